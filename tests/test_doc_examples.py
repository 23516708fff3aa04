"""Every command the front door shows runs as printed: the fenced blocks marked `runnable` (```python runnable,
```bash runnable: renderers still highlight them as python / bash) in README.md and docs/*.md are taken out
and run on the lab model. A file's python blocks run in order as one script, as a reader pastes them one after
another; each bash block runs on its own, with `swiftlab` and `python` being this environment's. All of it in a
scratch folder with a scratch skip-set store, so nothing lands in the checkout or the user's store."""

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(python|bash) runnable\n(.*?)^```$", re.M | re.S)


def runnable_blocks(page: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(page.read_text())]


def test_the_readme_marks_its_quick_start_runnable():
    kinds = [kind for kind, _ in runnable_blocks(ROOT / "README.md")]
    assert kinds.count("python") >= 3 and "bash" in kinds  # the Python quick start, streaming, generate(), the CLI


@pytest.fixture
def scratch(tmp_path):
    env = {**os.environ, "SWIFTLAB_STORE": str(tmp_path / "store.json"), "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return tmp_path, env


@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=lambda p: p.name)
def test_runnable_examples_run_as_printed(page, scratch):
    folder, env = scratch
    blocks = runnable_blocks(page)
    script = "\n".join(code for kind, code in blocks if kind == "python")
    if script:
        done = subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{page.name}'s python blocks failed:\n{done.stderr[-3000:]}"
    for kind, code in blocks:
        if kind == "bash":
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=folder, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, f"{page.name}'s block failed:\n{code}\n{done.stderr[-3000:]}"


LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings (lower case, punctuation dropped, spaces as hyphens) and its
    explicit `<a id="...">` ones."""
    text = page.read_text()
    found = set(re.findall(r'<a id="([^"]+)">', text))
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


# --- examples that are shown but not run: each says why, and the long commands still name what exists ---

FENCE = re.compile(r"^```(\S*)(.*)$")
NOT_RUN = "not run in the suite"


def fenced_blocks(page: Path) -> list[tuple[str, str, str, str]]:
    """(language, info after it, code, the paragraph just before the fence) of every fenced block of a page.
    Blocks that follow each other with no text between share the paragraph before the first."""
    blocks, lines, inside, before, shared = [], page.read_text().split("\n"), None, [], ""
    for line in lines:
        fence = FENCE.match(line)
        if inside is None and fence:
            paragraphs = "\n".join(before).strip().split("\n\n")
            paragraph = paragraphs[-1] if paragraphs[-1] else shared
            inside = (fence.group(1), fence.group(2).strip(), [], paragraph)
        elif inside is not None and line.startswith("```"):
            blocks.append((inside[0], inside[1], "\n".join(inside[2]), inside[3]))
            inside, before, shared = None, [], inside[3]
        elif inside is not None:
            inside[2].append(line)
        else:
            before.append(line)
    return blocks


def unexplained_blocks(page: Path) -> list[str]:
    return [code.split("\n")[0] for lang, info, code, paragraph in fenced_blocks(page)
            if lang in ("python", "bash") and info != "runnable"
            and NOT_RUN not in " ".join(paragraph.split()).lower()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_example_is_run_or_says_why_not(page):
    """A new python or bash example gets marked runnable, or the paragraph before it says why it is
    "not run in the suite"."""
    assert not unexplained_blocks(page), (
        f"{page.name}: mark these blocks ```python runnable / ```bash runnable, or say why they are {NOT_RUN!r} "
        f"in the paragraph before them: {unexplained_blocks(page)}")


def test_the_guide_runs_most_of_its_examples():
    marked = [info == "runnable" for lang, info, _, _ in fenced_blocks(ROOT / "docs" / "guide.md")
              if lang in ("python", "bash")]
    assert sum(marked) >= 8 and sum(marked) > len(marked) / 2


BENCH_PAGES = [ROOT / "README.md", ROOT / "docs" / "measurements.md"]
INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
COMMAND = re.compile(r"(?<![\w./-])(?:(benchmarks/\w+\.py)|swiftlab\s+([a-z][a-z-]*)(?=\s|$))")
SHELL_END = re.compile(r"\s(?:\||&&|;|#|\d?>|2>&1)|;")
OPTION = re.compile(r"(?<![\w-])(-{1,2}[A-Za-z][\w-]*)")


def shown_commands(page: Path) -> list[tuple[str, list[str]]]:
    """(script or `swiftlab SUB`, its words) of every command a page shows, in fenced blocks of any kind
    (lines joined at a trailing backslash) and in inline code (which may run over a line end)."""
    text = page.read_text()
    texts = [code.replace("\\\n", " ") for _, _, code, _ in fenced_blocks(page)]
    prose = re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S)
    texts += [span.replace("\n", " ") for span in INLINE.findall(prose)]
    found = []
    for command_text in texts:
        for line in command_text.split("\n"):
            for m in COMMAND.finditer(line):
                rest = line[m.end():]
                end = SHELL_END.search(rest)
                rest = rest[:end.start()] if end else rest
                try:
                    words = shlex.split(rest)
                except ValueError:
                    words = rest.split()
                found.append((m.group(1) or f"swiftlab {m.group(2)}", words))
    return found


@cache
def help_text(*command: str) -> str:
    done = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, f"{' '.join(command)} --help failed:\n{done.stderr[-2000:]}"
    return done.stdout


def help_texts(commands: set[tuple[str, ...]]) -> None:
    """Fill help_text's cache side by side: each --help is a process that imports torch."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda command: help_text(*command), sorted(commands)))


def help_command(script: str, words: list[str]) -> tuple[str, ...]:
    """The command whose --help lists the options of `script words` (`swiftlab tasks show` for tasks show)."""
    if script.startswith("benchmarks/"):
        return (script,)
    command = ("-m", "swiftlab", script.split()[1])
    nested = re.search(r"^usage: .*?\{([\w,-]+)\}", help_text(*command), re.M | re.S)
    if nested and words and words[0] in nested.group(1).split(","):
        return (*command, words[0])
    return command


def options(words: list[str]) -> list[str]:
    return [word.split("=")[0] for word in words if OPTION.fullmatch(word.split("=")[0])]


@pytest.mark.parametrize("page", BENCH_PAGES, ids=lambda p: p.name)
def test_every_benchmark_command_shown_names_a_script_and_its_options(page):
    """The long benchmark commands are not run, but each names a script in benchmarks/ or a `swiftlab`
    subcommand, and every option it gives is one that script's --help lists."""
    commands = shown_commands(page)
    assert any(script.startswith("benchmarks/") for script, _ in commands), f"{page.name} shows no benchmark command"
    subcommands = re.search(r"\{([\w,-]+)\}", help_text("-m", "swiftlab")).group(1).split(",")
    wrong, checked = [], []
    for script, words in commands:
        if script.startswith("benchmarks/") and not (ROOT / script).is_file():
            wrong.append(f"{script}: no such script")
        elif script.startswith("swiftlab") and script.split()[1] not in subcommands:
            wrong.append(f"{script}: no such subcommand (swiftlab --help lists {subcommands})")
        elif options(words):  # a script given no options (some take only positional ones) has no --help to ask
            checked.append((script, words))
    help_texts({("-m", "swiftlab", script.split()[1]) for script, _ in checked if script.startswith("swiftlab")})
    help_texts({help_command(script, words) for script, words in checked})
    for script, words in checked:
        accepted = set(OPTION.findall(help_text(*help_command(script, words))))
        for option in options(words):
            if option not in accepted:
                wrong.append(f"{script} {' '.join(words)}: {option} is not in its --help")
    assert not wrong, f"{page.name}: " + "; ".join(wrong)


def test_every_benchmark_script_answers_help():
    """A reader finds a script in benchmarks/ and asks it what it takes: each parses its arguments with argparse,
    so --help prints its usage and exits 0 (never runs a benchmark, nor crashes on '--help' as an argument)."""
    scripts = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks").glob("*.py"))
    failed = []

    def ask(script):
        try:
            assert help_text(script).startswith("usage:"), f"{script} --help printed no usage"
        except AssertionError as e:
            failed.append(str(e).splitlines()[0])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(ask, scripts))
    assert len(scripts) > 10 and not failed, "; ".join(failed)
