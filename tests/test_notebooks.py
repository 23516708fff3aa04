"""Every notebook runs top to bottom, headless, on the lab model with the short parameters."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_seven_numbered_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_errors(path, tmp_path, monkeypatch):
    monkeypatch.setenv("SWIFTLAB_QUICK", "1")  # the parameter cell reads it: small sizes
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    nb = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "outputs must be stripped"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_takes_the_model_and_quick_mode_from_the_environment(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code").source
    assert 'MODEL = os.environ.get("SWIFTLAB_MODEL", "lab")' in first
    assert "QUICK = swiftlab.support.settings.quick()" in first  # checked: SWIFTLAB_QUICK=maybe is an error, not full size


ANALYSIS = [p for p in NOTEBOOKS if p.name[:2] in ("02", "03", "04", "05")]


@pytest.mark.parametrize("path", ANALYSIS, ids=lambda p: p.stem)
def test_analysis_notebooks_say_what_quick_mode_is_and_how_long_they_take(path):
    nb = nbformat.read(path, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code").source
    assert "smoke test" in first_code and "mean nothing" in first_code
    intro = nb.cells[0].source
    assert "minute" in intro and "2 CPU cores" in intro


def test_notebook_five_shows_its_figures_inline_with_progress():
    nb = nbformat.read(next(p for p in NOTEBOOKS if p.name.startswith("05")), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "FigureWidget" in code and "progress=True" in code and "tqdm" in code
