"""Every command the front door shows runs as printed: the fenced blocks marked `runnable` (```python runnable,
```bash runnable: renderers still highlight them as python / bash) in README.md and docs/*.md are taken out
and run on the lab model. A file's python blocks run in order as one script, as a reader pastes them one after
another; each bash block runs on its own, with `swiftlab` and `python` being this environment's. All of it in a
scratch folder with a scratch skip-set store, so nothing lands in the checkout or the user's store."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
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


@pytest.mark.parametrize("page", [*PAGES, ROOT / "CONTRIBUTING.md"], ids=lambda p: p.name)
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
