"""The skip-set search, driven by a synthetic objective (no model needed)."""

import pytest

from swiftlab import SkipSet, SwiftlabError
from swiftlab.search.skipsearch import SearchConfig, SkipSearch, Trajectory

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


def test_proposals_respect_the_ratio_and_every_beta_th_is_bayes(monkeypatch):
    import swiftlab.search.skipsearch as search_module

    fits = []
    original = search_module.gp_posterior

    def spy(xs, ys, points, **kwargs):
        fits.append((list(map(tuple, xs)), list(ys), list(map(tuple, points))))
        return original(xs, ys, points, **kwargs)

    monkeypatch.setattr(search_module, "gp_posterior", spy)
    search = run(SkipSearch(L, SearchConfig(max_steps=30, bayes_interval=5, tolerance=1000, max_score=1.0)))
    kinds = [s.kind for s in search.trajectory.steps[1:]]
    assert kinds.count("bayes") == 6 and all(k == "bayes" for k in kinds[4::5])
    assert len(fits) == 6
    k = int(2 * (L - 2) * 0.45)
    for s in search.trajectory.steps[1:]:
        assert len(s.attention) + len(s.mlp) == k
    # each Bayesian proposal is the pool point with the highest upper confidence bound, never one scored before
    for (xs, ys, pool), record in zip(fits, [s for s in search.trajectory.steps if s.kind == "bayes"]):
        mask = tuple(SkipSet(tuple(record.attention), tuple(record.mlp), L).to_mask())
        mean, std = original(xs, ys, pool)
        ucb = [m + 2.5 * d for m, d in zip(mean, std)]
        assert ucb[pool.index(mask)] == max(ucb)
        assert mask not in xs


def test_the_gp_fits_a_bounded_history_of_the_best_and_the_latest():
    search = run(SkipSearch(L, SearchConfig(max_steps=150, bayes_interval=1000, tolerance=1000, max_score=1.0,
                                            history=20)))
    xs, ys = search._history()
    assert len(xs) <= 20 and len(xs) == len(ys)
    assert max(ys) == search.best_value and tuple(search.best.to_mask()) in xs
    latest = tuple(SkipSet(tuple(search.trajectory.steps[-1].attention), tuple(search.trajectory.steps[-1].mlp),
                           L).to_mask())
    assert latest in xs


def test_gp_posterior_interpolates_and_is_unsure_far_away():
    from swiftlab.search.skipsearch import gp_posterior

    xs = [[0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0]]
    mean, std = gp_posterior(xs, [0.2, 0.8], xs + [[0, 0, 0, 0, 1, 1, 1, 1]])
    assert abs(mean[0] - 0.2) < 0.02 and abs(mean[1] - 0.8) < 0.02
    assert std[0] < 0.2 * std[2] and std[1] < 0.2 * std[2]


def test_ratio_search_values_sets_by_the_callers_objective():
    # a value that prefers fewer skipped sub-layers whatever their matchness: the search must follow it
    value = lambda skip_set, matchness: 0.01 * matchness - skip_set.ratio
    search = run(SkipSearch(L, SearchConfig(ratios=(0.2, 0.45), max_steps=60, bayes_interval=4, tolerance=1000,
                                            max_score=0.01, settle=1000), value=value))
    assert search.stopped_because == "max_steps"  # the matchness ceiling alone does not stop a valued search
    counts = {len(s.attention) + len(s.mlp) for s in search.trajectory.steps[1:]}
    assert counts == {int(2 * (L - 2) * 0.2), int(2 * (L - 2) * 0.45)}
    assert search.best.num_skipped == int(2 * (L - 2) * 0.2)
    for s in search.trajectory.steps:
        assert s.value == pytest.approx(value(SkipSet(tuple(s.attention), tuple(s.mlp), L), s.matchness))
    assert search.best_value == max(s.value for s in search.trajectory.steps)


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


def test_revalue_ranks_every_scored_point_by_the_new_value():
    search = run(SkipSearch(L, SearchConfig(ratios=(0.2, 0.45), max_steps=30, tolerance=1000, max_score=1.0)))
    assert search.best.num_skipped >= int(2 * (L - 2) * 0.45)  # overlap with GOOD favours the larger sets
    value = lambda skip_set, matchness: 0.1 * matchness - skip_set.ratio  # now fewer skipped sub-layers win
    search.revalue(value)
    values = [s.value for s in search.trajectory.steps]
    assert search.best_value == max(values) and values[-1] is not None
    winner = max(search.trajectory.steps, key=lambda s: s.value)
    assert search.best == SkipSet(tuple(winner.attention), tuple(winner.mlp), L)
    assert search.best_score == winner.matchness and search.best.num_skipped == int(2 * (L - 2) * 0.2)


def test_a_valued_search_stops_at_the_ceiling_once_its_best_has_settled():
    value = lambda skip_set, matchness: matchness - skip_set.ratio
    search = run(SkipSearch(L, SearchConfig(ratios=(0.2, 0.45), max_steps=500, bayes_interval=4, tolerance=1000,
                                            max_score=0.01, settle=5), value=value))
    assert search.stopped_because == "max_score" and search.since_improved == 5
    assert search.best_score > 0.01 and search.iteration < 500
