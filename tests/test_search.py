"""The skip-set search, driven by a synthetic objective (no model needed)."""

import pytest

from swiftlab import SkipSet, SwiftlabError
from swiftlab.search import SearchConfig, SkipSearch, Trajectory

L = 12
GOOD = SkipSet.uniform(L, 0.45)  # the hidden optimum of the synthetic objective


def overlap_score(sets):
    """Share of GOOD's sub-layers a candidate also skips: smooth, with a unique maximum."""
    good = set(map(tuple, ([("a", i) for i in GOOD.attention] + [("m", i) for i in GOOD.mlp])))
    out = []
    for s in sets:
        mine = {("a", i) for i in s.attention} | {("m", i) for i in s.mlp}
        out.append(len(mine & good) / len(good))
    return out


def run(search, steps=10_000):
    for _ in range(steps):
        if search.done:
            break
        search.step(overlap_score)
    return search


def test_never_worse_than_start_and_records_every_proposal():
    search = run(SkipSearch(L, SearchConfig(max_steps=60, bayes_interval=5, tolerance=1000, max_score=1.0)))
    start_score = search.trajectory.steps[0].matchness
    assert search.trajectory.steps[0].kind == "start"
    assert search.best_score >= start_score
    assert search.stopped_because == "max_steps" and search.iteration == 60
    assert len(search.trajectory.steps) == 61
    best_curve = [s.best_matchness for s in search.trajectory.steps]
    assert best_curve == sorted(best_curve)  # the best never gets worse


def test_proposals_respect_the_ratio_and_bayes_comes_from_skopt(monkeypatch):
    import skopt

    asked = []
    original = skopt.Optimizer.ask

    def spy(self, *a, **k):
        point = original(self, *a, **k)
        asked.append(point)
        return point

    monkeypatch.setattr(skopt.Optimizer, "ask", spy)
    search = run(SkipSearch(L, SearchConfig(max_steps=30, bayes_interval=5, tolerance=1000, max_score=1.0)))
    kinds = [s.kind for s in search.trajectory.steps[1:]]
    assert kinds.count("bayes") == 6 and all(k == "bayes" for k in kinds[4::5])
    assert len(asked) == 6
    k = int(2 * (L - 2) * 0.45)
    for record, point in zip([s for s in search.trajectory.steps if s.kind == "bayes"], asked):
        assert len(record.attention) + len(record.mlp) == k
        top = sorted(range(len(point)), key=lambda j: -point[j])[:k]  # the top-k of skopt's point
        assert SkipSet.from_coordinates(L, top) == SkipSet(tuple(record.attention), tuple(record.mlp), L)
    for s in search.trajectory.steps[1:]:
        assert len(s.attention) + len(s.mlp) == k


def test_every_scored_point_is_told_to_the_optimizer(monkeypatch):
    import skopt

    told = []
    original = skopt.Optimizer.tell

    def spy(self, x, y, *a, **k):
        told.extend(zip(x, y))
        return original(self, x, y, *a, **k)

    monkeypatch.setattr(skopt.Optimizer, "tell", spy)
    search = run(SkipSearch(L, SearchConfig(max_steps=20, bayes_interval=10, tolerance=1000, max_score=1.0)))
    # told in a batch before each of the 2 asks (proposals 10 and 20): everything scored before
    # the second ask, i.e. the start set and proposals 1..19, each as its mask with -matchness
    assert len(told) == 20
    for (x, y), record in zip(told, search.trajectory.steps):
        assert x == [float(v) for v in SkipSet(tuple(record.attention), tuple(record.mlp), L).to_mask()]
        assert y == -record.matchness


@pytest.mark.parametrize("config, reason", [
    (SearchConfig(max_score=0.5, tolerance=1000, max_steps=1000), "max_score"),
    (SearchConfig(max_score=1.0, tolerance=3, max_steps=1000, bayes_interval=10**6), "tolerance"),
    (SearchConfig(max_score=1.0, tolerance=1000, max_steps=7), "max_steps"),
])
def test_stopping_rules(config, reason):
    search = run(SkipSearch(L, config))
    assert search.stopped_because == reason
    assert search.step(overlap_score) == []  # a stopped search does nothing


def test_parallel_candidates_and_round_trip():
    search = SkipSearch(L, SearchConfig(candidates_per_step=4, max_steps=20, tolerance=1000, max_score=1.0))
    search.step(overlap_score)  # the start set
    records = search.step(overlap_score)
    assert len(records) == 4 and len({(tuple(r.attention), tuple(r.mlp)) for r in records}) == 4
    run(search)
    back = Trajectory.from_json(search.trajectory.to_json())
    assert back == search.trajectory


def test_reopen_rescores_the_best_first():
    search = run(SkipSearch(L, SearchConfig(max_score=0.5, tolerance=1000)))
    assert search.done
    search.reopen()
    assert not search.done and search.propose() == [("start", search.best)]


def test_bad_config_and_scores():
    with pytest.raises(SwiftlabError, match="max_score"):
        SearchConfig(max_score=0)
    search = SkipSearch(L)
    with pytest.raises(SwiftlabError, match="1 proposals but 2 scores"):
        search.observe(search.propose(), [0.1, 0.2])
