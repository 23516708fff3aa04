"""`pip install swiftlab` into an environment that already has torch: the wheel and sdist build, the wheel carries
the lab model, installing it keeps the torch that is there, and the installed command runs from anywhere."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "swiftlab")  # what an sdist is made from
PROMPT = "Once upon a time"


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """`python -m build` on a copy of the sources (so no build/ or egg-info lands in the checkout): it makes the
    sdist, then the wheel FROM that sdist, which shows the sdist holds what the wheel needs. --no-isolation uses
    this environment's setuptools, so nothing is downloaded."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp / "dist", src])
    (wheel,), (sdist,) = (tmp / "dist").glob("*.whl"), (tmp / "dist").glob("*.tar.gz")
    return {"src": src, "wheel": wheel, "sdist": sdist}


def _package_files(src: Path) -> set[str]:
    return {p.relative_to(src).as_posix() for p in (src / "swiftlab").rglob("*")
            if p.is_file() and (p.suffix == ".py" or p.parent.name == "lab")}


def test_wheel_holds_every_module_and_the_lab_model(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    expected = _package_files(built["src"])
    assert {n for n in names if n.startswith("swiftlab/")} == expected
    assert "swiftlab/models/lab/model.safetensors" in names and "swiftlab/models/lab/tokenizer.json" in names


def test_sdist_holds_the_sources_and_the_lab_model(built):
    with tarfile.open(built["sdist"]) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        names = {n.removeprefix(top + "/") for n in sdist.getnames()}
    assert {"pyproject.toml", "README.md", "LICENSE"} <= names
    assert _package_files(built["src"]) <= names


def _wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as whl:
        text = whl.read(next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    return [Requirement(r) for r in Parser().parsestr(text).get_all("Requires-Dist")]


def test_wheel_asks_for_ranges_this_environment_already_satisfies(built):
    """What `pip install swiftlab` would do to an environment with torch 2.13: nothing, when every range in the
    wheel's METADATA holds the version installed here (main dependencies and the lab and test extras)."""
    requirements = _wheel_requirements(built["wheel"])
    torch = next(r for r in requirements if r.name == "torch")
    assert not any(s.operator in ("==", "===", "~=") for s in torch.specifier), f"torch is pinned: {torch}"
    unmet = [f"{r} (installed: {metadata.version(r.name)})" for r in requirements
             if not r.specifier.contains(Version(metadata.version(r.name)))]
    assert not unmet


@pytest.fixture(scope="module")
def user_env(tmp_path_factory) -> Path:
    """A fresh venv that sees this environment's packages (torch, transformers, ...) but not its editable swiftlab:
    a user's environment before `pip install swiftlab`. Its .pth names a folder of links to every entry of this
    site-packages except swiftlab's own (a plain path in a .pth: the .pth files inside it are not run, so the
    editable finder is not either)."""
    tmp = tmp_path_factory.mktemp("user")
    venv.create(tmp / "venv", with_pip=False)
    existing = tmp / "existing-packages"
    existing.mkdir()
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for entry in Path(site).iterdir():
            if not entry.name.lower().startswith(("swiftlab", "__editable__")) and entry.suffix != ".pth":
                (existing / entry.name).symlink_to(entry)
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (tmp / "venv" / "lib" / py / "site-packages" / "existing.pth").write_text(f"{existing}\n")
    return tmp / "venv"


@pytest.fixture(scope="module")
def installed(built, user_env, tmp_path_factory) -> dict:
    """`pip install` of the wheel, dependencies resolved (not --no-deps), with --no-index: it can only succeed
    if what the environment has satisfies every range, and the report says what pip installed."""
    report = tmp_path_factory.mktemp("report") / "report.json"
    _run([sys.executable, "-m", "pip", "--python", user_env / "bin" / "python", "install", "-q", "--no-index",
          "--disable-pip-version-check", "--report", report, built["wheel"]])
    return json.loads(report.read_text())


def test_pip_installs_swiftlab_alone_and_keeps_the_torch_that_is_there(installed, user_env, tmp_path):
    assert [item["metadata"]["name"] for item in installed["install"]] == ["swiftlab"]
    code = "import swiftlab, torch; print(swiftlab.__file__); print(torch.__version__)"
    # from outside the checkout: `python -c` puts the working directory first on sys.path
    swiftlab_file, torch_version = _run([user_env / "bin" / "python", "-c", code], cwd=tmp_path).stdout.split()
    assert Path(swiftlab_file).is_relative_to(user_env) and torch_version == metadata.version("torch")


@pytest.fixture
def swiftlab_cli(installed, user_env, tmp_path):
    """The installed `swiftlab` command, run from a folder outside the checkout with its caches in tmp."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(SWIFTLAB_HOME=str(tmp_path / "home"), SWIFTLAB_STORE=str(tmp_path / "skip_layers.json"),
               HF_HUB_OFFLINE="1", PYTHONNOUSERSITE="1",
               OMP_NUM_THREADS="1")  # 8 tokens of a 15 MB model: one thread is quicker on a shared CPU

    def run(*args) -> str:
        return _run([user_env / "bin" / "swiftlab", *args], cwd=outside, env=env).stdout
    return run


def test_installed_command_lists_its_commands_and_models(swiftlab_cli, user_env):
    assert "generate" in swiftlab_cli("--help")
    models = swiftlab_cli("models")
    lab_folder = user_env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" \
        / "swiftlab" / "models" / "lab"
    assert "lab" in models and "smollm2-135m" in models
    assert f"folder: {lab_folder}" in models, models  # the installed package's lab model, not /work/main's
    assert str(ROOT) not in models


def test_installed_command_generates_with_the_bundled_lab_model(swiftlab_cli):
    common = ("generate", "--model", "lab", "--prompt", PROMPT, "--max-new-tokens", "8", "--json")
    ar, swift = (json.loads(swiftlab_cli(*common, "--method", m)) for m in ("ar", "swift"))
    assert ar["method"] == "ar" and swift["method"] == "swift"
    assert len(ar["token_ids"]) == 8 and ar["text"].strip()
    assert swift["token_ids"] == ar["token_ids"]  # greedy SWIFT is the model's own greedy output
