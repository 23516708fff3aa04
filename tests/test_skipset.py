import json

import pytest

from swiftlab import SkipSet, SwiftlabError, load_reference_skip_sets, save_reference_skip_sets

L40_CNNDM = {"attention": [2, 5, 6, 10, 11, 14, 15, 20, 22, 23, 24, 25, 26, 27, 28, 30, 32, 33, 34, 35],
             "mlp": [9, 11, 14, 15, 19, 20, 24, 25, 26, 27, 28, 29, 30, 31]}


def test_ratio_and_normalisation():
    s = SkipSet((5, 2, 2), (3,), 10)
    assert s.attention == (2, 5) and s.mlp == (3,)
    assert s.num_skipped == 3 and s.search_size == 16 and s.ratio == pytest.approx(3 / 16)
    ref = SkipSet(tuple(L40_CNNDM["attention"]), tuple(L40_CNNDM["mlp"]), 40)
    assert ref.num_skipped == 34 and ref.ratio == pytest.approx(34 / 76)


@pytest.mark.parametrize("args, message", [
    (((12,), (), 10), "attention layer index 12 out of range .* 10 layers"),
    (((), (-1,), 10), "mlp layer index -1 out of range"),
    (((0,), (), 10), "first or last layer.*allow_edges"),
    (((), (9,), 10), "first or last layer"),
    (((1.5,), (), 10), "must be integers"),
    (((), (), 0), "num_layers must be a positive integer"),
])
def test_validation(args, message):
    with pytest.raises(SwiftlabError, match=message):
        SkipSet(*args)


def test_edges_with_explicit_override():
    assert SkipSet((0, 9), (9,), 10, allow_edges=True).num_skipped == 3


def test_uniform_is_every_other_middle_layer():
    s = SkipSet.uniform(10, 0.5)
    assert s.attention == s.mlp == (1, 3, 5, 7)
    assert s.ratio == 0.5
    for r in (0.1, 0.25, 0.4, 0.45, 0.6):
        u = SkipSet.uniform(40, r)
        assert u.num_skipped == int(76 * r + 1e-9)
    assert SkipSet.uniform(10, 0.0).num_skipped == 0


def test_random_at_ratio_is_seeded():
    a, b = SkipSet.random(40, 0.45, seed=3), SkipSet.random(40, 0.45, seed=3)
    assert a == b and a.num_skipped == 34
    assert SkipSet.random(40, 0.45, seed=4) != a
    with pytest.raises(SwiftlabError, match="between 0 and 1"):
        SkipSet.random(40, 1.5)


def test_early_exit():
    s = SkipSet.early_exit(10, 7)
    assert s.attention == s.mlp == (7, 8, 9) and s.allow_edges
    with pytest.raises(SwiftlabError, match="exit layer 10 out of range"):
        SkipSet.early_exit(10, 10)


def test_coordinates_round_trip():
    s = SkipSet((1, 4), (2, 8), 10)
    mask = s.to_mask()
    assert len(mask) == 16 and sum(mask) == 4
    assert SkipSet.from_coordinates(10, [i for i, m in enumerate(mask) if m]) == s


def test_json_round_trip(tmp_path):
    s = SkipSet.random(12, 0.4, seed=1)
    s.save(tmp_path / "s.json")
    assert SkipSet.load(tmp_path / "s.json") == s
    assert SkipSet.load(tmp_path / "s.json", num_layers=12) == s
    with pytest.raises(SwiftlabError, match="12-layer model, this model has 10"):
        SkipSet.load(tmp_path / "s.json", num_layers=10)
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp files left behind


def test_reference_skip_layers_json(tmp_path):
    path = tmp_path / "skip_layers.json"
    path.write_text(json.dumps({"llama-2-13b_cnndm": L40_CNNDM,
                                "llama-2-13b_gsm8k": {"attention": [3, 4], "mlp": [5]}}))
    sets = load_reference_skip_sets(path, 40)
    assert sets["llama-2-13b_cnndm"].attention == tuple(L40_CNNDM["attention"])
    assert SkipSet.load(path, 40, key="llama-2-13b_gsm8k").mlp == (5,)
    with pytest.raises(SwiftlabError, match="holds 2 skip sets"):
        SkipSet.load(path, 40)
    with pytest.raises(SwiftlabError, match="no skip set 'x'"):
        SkipSet.load(path, 40, key="x")
    save_reference_skip_sets(path, {"mine_story": SkipSet((1, 2), (3,), 40)})
    data = json.loads(path.read_text())
    assert set(data) == {"llama-2-13b_cnndm", "llama-2-13b_gsm8k", "mine_story"}
    assert data["mine_story"] == {"attention": [1, 2], "mlp": [3]}
    assert load_reference_skip_sets(path, 40)["llama-2-13b_cnndm"] == sets["llama-2-13b_cnndm"]


def test_reference_entry_out_of_range_for_this_model(tmp_path):
    path = tmp_path / "skip_layers.json"
    path.write_text(json.dumps({"llama-2-13b_cnndm": L40_CNNDM}))
    with pytest.raises(SwiftlabError, match="out of range for a model with 32 layers"):
        load_reference_skip_sets(path, 32)


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"attention": [1, 2')
    with pytest.raises(SwiftlabError, match="corrupt skip set .*bad.json: invalid JSON at line 1"):
        SkipSet.load(bad)
    bad.write_text('{"foo": 1}')
    with pytest.raises(SwiftlabError, match="not a skip-set file"):
        SkipSet.load(bad)
    with pytest.raises(SwiftlabError, match="does not exist"):
        SkipSet.load(tmp_path / "missing.json")


def test_uniform_spreads_each_kind_evenly():
    # issue 14: r = 0.4 on 16 layers skipped attention [1, 2, 3, 6, 9, 12]
    for L in (6, 10, 16, 30, 40):
        for r in (0.1, 0.25, 0.4, 0.45, 0.5, 0.6):
            s = SkipSet.uniform(L, r)
            assert s.num_skipped == int(2 * (L - 2) * r + 1e-9)
            for layers in (s.attention, s.mlp):
                if len(layers) < 2:
                    continue
                gaps = [b - a for a, b in zip(layers, layers[1:])]
                ends = [layers[0] - 1, L - 2 - layers[-1]]  # unskipped middle layers before and after
                assert max(gaps) - min(gaps) <= 1 and max(ends) <= max(gaps) - 1, (L, r, layers)
    assert SkipSet.uniform(16, 0.4).attention == (1, 4, 6, 8, 11, 13)
