"""Probes through the CLI into JSON, and figures redrawn from the saved records alone."""

import json

import pytest

from swiftlab.cli import main
from swiftlab.experiments import PROBES


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
    assert "plotly" in (tmp_path / "transfer.html").read_text()


def test_figures_argument_errors(capsys, tmp_path):
    assert main(["figures", "--out", str(tmp_path)]) == 2
    assert "give --from DIR" in capsys.readouterr().err
    assert main(["figures", "--from", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "no probe records" in capsys.readouterr().err
