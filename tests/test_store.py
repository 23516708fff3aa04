import json

import pytest

from swiftlab import SkipSet, SwiftlabError, load_reference_skip_sets
from swiftlab.store import SkipSetStore, model_key


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
    assert [p.name for p in tmp_path.iterdir()] == ["skip_layers.json"]  # atomic: no temp files left


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
