import pytest
from tiny_models import tiny_model

from swiftlab import SwiftlabError
from swiftlab.search.offline import offline_search
from swiftlab.search.skipsearch import SearchConfig

PROMPTS = [[1, 5, 9, 23, 40, 7], [1, 8, 3, 3, 60]]


@pytest.mark.parametrize("objective", ["matchness", "tokens_per_s"])
def test_offline_bayesian_search(objective):
    model = tiny_model("llama")
    search = offline_search(model, PROMPTS, SearchConfig(max_score=1.0, tolerance=1000), steps=6,
                            objective=objective, max_new_tokens=12, progress=False)
    kinds = [s.kind for s in search.trajectory.steps]
    assert kinds == ["start"] + ["bayes"] * 6  # every proposal comes from the optimizer, as in Self-SD
    assert search.best_score >= search.trajectory.steps[0].matchness
    assert all(s.wall_s > 0 for s in search.trajectory.steps)  # the search cost is recorded
    if objective == "matchness":
        assert all(0.0 <= s.matchness <= 1.0 for s in search.trajectory.steps)


def test_offline_bad_input():
    model = tiny_model("llama")
    with pytest.raises(SwiftlabError, match="unknown objective"):
        offline_search(model, PROMPTS, objective="vibes")
    with pytest.raises(SwiftlabError, match="at least one calibration prompt"):
        offline_search(model, [])
