"""Probes through the CLI into JSON, and figures redrawn from the saved records alone."""

import importlib.util
import json
import shutil

import pytest

from swiftlab.cli import main
from swiftlab.analysis.experiments import PROBES


@pytest.fixture(scope="module")
def probe_dir(local_long_llama_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("probes")
    for name in PROBES:
        code = main(["probe", name, "--model", str(local_long_llama_dir), "--task", "story", "--prompts", "1",
                     "--max-new-tokens", "12", "--out", str(folder / f"{name}.json")])
        assert code == 0
    return folder


def test_every_probe_writes_a_record(probe_dir):
    for name in PROBES:
        data = json.loads((probe_dir / f"{name}.json").read_text())
        assert data["probe"] == name and data["record"]
    sparsity = json.loads((probe_dir / "task-sparsity.json").read_text())["record"]
    assert len(sparsity["transfer"]) == 4 and all(len(row) == 4 for row in sparsity["transfer"])
    assert sparsity["identical"]


def test_figures_from_saved_records(probe_dir, tmp_path, capsys):
    assert main(["figures", "--from", str(probe_dir), "--out", str(tmp_path)]) == 0
    names = {p.stem for p in tmp_path.glob("*.html")}
    assert {"importance", "redundancy", "sweep-story", "task-skip-sets", "transfer", "trajectory-story",
            "stream-story", "latency-story"} <= names
    page = (tmp_path / "transfer.html").read_text()
    # self-contained (issue 14: a shared plotly.min.js got 403 in JupyterLab, "Plotly is not defined")
    assert 'src="plotly.min.js"' not in page and not (tmp_path / "plotly.min.js").exists()
    assert "Plotly" in page and len(page) > 1_000_000  # plotly.js embedded
    if shutil.which("chromium") and importlib.util.find_spec("kaleido"):
        for name in names:  # static images too, where kaleido finds a browser
            assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_png_export_failure_is_said_once_and_html_still_written(probe_dir, tmp_path, capsys, monkeypatch):
    import plotly.graph_objects as go

    def no_browser(self, *args, **kwargs):
        raise RuntimeError("Kaleido requires Google Chrome to be installed.\nmore detail")

    monkeypatch.setattr(go.Figure, "write_image", no_browser)
    assert main(["figures", "--from", str(probe_dir), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count("PNG export skipped (Kaleido requires Google Chrome to be installed.)") == 1
    assert len(list(tmp_path.glob("*.html"))) >= 8 and not list(tmp_path.glob("*.png"))


def test_figures_argument_errors(capsys, tmp_path):
    assert main(["figures", "--out", str(tmp_path)]) == 2
    assert "give --from DIR" in capsys.readouterr().err
    assert main(["figures", "--from", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "no probe records" in capsys.readouterr().err


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs /usr/bin/chromium")
def test_figure_pages_draw_offline_in_a_browser(probe_dir, tmp_path):
    """Open a written page from disk in headless Chromium with networking off: plotly draws its SVG."""
    import subprocess

    assert main(["figures", "--from", str(probe_dir), "--out", str(tmp_path)]) == 0
    page = tmp_path / "transfer.html"
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--proxy-server=127.0.0.1:9", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert "main-svg" in dom and "Cross-task transfer" in dom  # Plotly was defined and drew the figure
