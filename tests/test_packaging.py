"""Set-up files stay consistent: environment.yml mirrors pyproject, CI runs the README's command."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | {d for ds in project["optional-dependencies"].values() for d in ds}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {d for d in pip_section if not d.startswith("-e")}
    assert listed == wanted


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"`(bash bin/test)`", readme).group(1)
    assert command in (ROOT / ".ci" / "run").read_text()
    assert "`bash bin/lab`" in readme


def test_torch_is_pinned_to_the_local_cpu_build():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
    assert '"torch==2.13.0"' in (ROOT / "bin" / "setup").read_text()
