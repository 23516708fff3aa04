import json
import os
from pathlib import Path

import pytest

from swiftlab import SkipSet, SwiftlabError, load_reference_skip_sets
from swiftlab.search.store import SkipSetStore, model_key


def test_round_trip_and_reference_compatibility(tmp_path):
    store = SkipSetStore(tmp_path / "skip_layers.json")
    assert store.get("lab", "story", 16) is None
    s = SkipSet((1, 3, 5), (2, 4), 16)
    key = store.put("/some/where/lab", "story", s, matchness=0.91)
    assert key == "lab_story" and store.get("lab", "story", 16) == s
    store.put("lab", "reasoning", SkipSet((2,), (), 16))
    assert set(store.entries()) == {"lab_story", "lab_reasoning"}
    # the reference reader takes our file as is
    assert load_reference_skip_sets(store.path, 16)["lab_story"] == s
    assert json.loads(store.path.read_text())["lab_story"]["matchness"] == 0.91
    # atomic: no temp files left (the lock file stays: deleting it would let two writers lock different files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["skip_layers.json", "skip_layers.json.lock"]


def test_reference_file_works_as_a_store(tmp_path):
    path = tmp_path / "skip_layers.json"
    path.write_text(json.dumps({"Llama-2-13b-hf_cnndm": {"attention": [2, 5], "mlp": [9]}}))
    assert SkipSetStore(path).get("meta-llama/Llama-2-13b-hf", "cnndm", 40).attention == (2, 5)


def test_corrupt_store_is_reported_not_replaced(tmp_path):
    path = tmp_path / "skip_layers.json"
    path.write_text('{"lab_story": {"attention": [1,')
    store = SkipSetStore(path)
    with pytest.raises(SwiftlabError, match="corrupt skip-set store"):
        store.get("lab", "story", 16)
    with pytest.raises(SwiftlabError, match="corrupt skip-set store"):
        store.put("lab", "story", SkipSet((1,), (), 16))
    assert path.read_text() == '{"lab_story": {"attention": [1,'


def test_model_key():
    assert model_key("meta-llama/Llama-2-13b-hf") == "Llama-2-13b-hf"
    assert model_key("/tmp/my model/") == "my-model"


# ----- nothing lost: locking, mode, symlinks, better-only replacement (issue 17) ----------------------
def _put_many(path, worker, count, start):
    store = SkipSetStore(path)
    start.wait(timeout=300)  # a barrier: every writer begins at once, so their read-modify-writes overlap
    for i in range(count):
        store.put(f"model{worker}", f"task{i}", SkipSet((1 + i % 4,), (), 6))


def test_concurrent_writers_keep_every_entry(tmp_path):
    """Several processes making puts on one store at once: every entry survives (a file lock beside the store)."""
    import multiprocessing

    path = tmp_path / "store.json"
    workers, count = 4, 60
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate `optimize` runs are
    start = context.Barrier(workers)
    procs = [context.Process(target=_put_many, args=(path, w, count, start)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    entries = SkipSetStore(path).entries()
    assert len(entries) == workers * count
    assert set(entries) == {f"model{w}_task{i}" for w in range(workers) for i in range(count)}


def test_atomic_writes_keep_the_mode(tmp_path):
    from swiftlab.support.storage import atomic_write_text

    store_path = tmp_path / "store.json"
    store_path.write_text("{}")
    store_path.chmod(0o644)
    SkipSetStore(store_path).put("lab", "story", SkipSet((1,), (), 6))
    assert store_path.stat().st_mode & 0o777 == 0o644
    set_path = tmp_path / "set.json"
    set_path.write_text("{}")
    set_path.chmod(0o640)
    SkipSet((1,), (), 6).save(set_path)
    assert set_path.stat().st_mode & 0o777 == 0o640
    new = tmp_path / "new.json"  # a new file: what open() would give, not mkstemp's 0600
    atomic_write_text(new, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert new.stat().st_mode & 0o777 == 0o666 & ~umask


def test_probe_records_keep_the_mode(tmp_path):
    from swiftlab.analysis.experiments import save

    path = tmp_path / "importance.json"
    path.write_text("{}")
    path.chmod(0o664)
    save(path, "dynamics", {"task": "story"})
    assert path.stat().st_mode & 0o777 == 0o664


def test_a_store_that_is_a_symlink_is_written_through(tmp_path):
    target = tmp_path / "real" / "skip_layers.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    SkipSetStore(link).put("lab", "story", SkipSet((1,), (), 6))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "lab_story" in json.loads(target.read_text())


def test_a_worse_or_unscored_set_never_replaces_a_searched_one(tmp_path):
    store = SkipSetStore(tmp_path / "store.json")
    good, worse, better = SkipSet((1, 2), (3,), 6), SkipSet((4,), (), 6), SkipSet((2,), (2,), 6)
    key, why = store.put_if_better("lab", "story", good, 0.97, iterations=40)
    assert key == "lab_story" and why is None
    key, why = store.put_if_better("lab", "story", worse, 0.5)
    assert "scored matchness 0.970" in why and store.get("lab", "story", 6) == good
    key, why = store.put_if_better("lab", "story", worse, 0.97)  # a tie keeps what is there
    assert why and store.get("lab", "story", 6) == good
    key, why = store.put_if_better("lab", "story", better, 0.99)
    assert why is None and store.get("lab", "story", 6) == better
    key, why = store.put_if_better("lab", "story", worse, 0.1, replace=True)  # on request
    assert why is None and store.get("lab", "story", 6) == worse
    store.put("lab", "code", good)  # an entry with no score (hand-made or the reference's): not compared
    assert "no matchness score" in store.put_if_better("lab", "code", worse, 0.99)[1]
    assert store.entries()["lab_story"]["matchness"] == 0.1


def test_a_stored_entry_for_another_layer_count_is_refused(tmp_path):
    store = SkipSetStore(tmp_path / "store.json")
    store.put("lab", "story", SkipSet((1, 3, 9), (2,), 16))
    with pytest.raises(SwiftlabError, match="lab_story .*16-layer model, this model has 5 layers"):
        store.get("lab", "story", 5)
    assert "16-layer model" in store.put_if_better("lab", "story", SkipSet((1,), (), 5), 0.99)[1]


def test_check_fails_before_work_on_a_corrupt_or_unwritable_store(tmp_path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{")
    with pytest.raises(SwiftlabError, match="corrupt skip-set store"):
        SkipSetStore(corrupt).check()
    with pytest.raises(SwiftlabError, match="is a folder"):
        SkipSetStore(tmp_path).check()
    SkipSetStore(tmp_path / "new" / "store.json").check()  # a store still to be created is fine
    with pytest.raises(SwiftlabError, match="cannot write folder"):
        SkipSetStore(unwritable_folder(tmp_path) / "store.json").check()


def unwritable_folder(tmp_path):
    """A folder this process cannot create files in, even as root (sysfs refuses new files)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder
