"""Figure builders: records in, figures with the expected traces out."""

from swiftlab import SkipSet
from swiftlab.figures import (importance_heatmap, latency_figure, redundancy_figure, skip_sets_heatmap,
                              stream_figure, sweep_figure, trajectory_figure, transfer_matrix)
from swiftlab.probes import ImportanceRecord, RedundancyRecord, SweepRecord, SweepRow
from swiftlab.search import StepRecord, Trajectory
from swiftlab.stream import PromptRecord


def test_importance_and_redundancy():
    recs = [ImportanceRecord(t, 4, 2, 8, [0.5, 0.1, 0.2, 0.9], [0.4, 0.0, 0.1, 0.8], [1] * 4, [1] * 4)
            for t in ("story", "code")]
    fig = importance_heatmap(recs)
    assert fig.data[0].type == "heatmap" and list(fig.data[0].y) == [
        "story · attention", "story · MLP", "code · attention", "code · MLP"]
    assert list(fig.data[0].z[1]) == [0.4, 0.0, 0.1, 0.8]
    red = redundancy_figure([RedundancyRecord("story", 4, 1, 8, [0.9] * 4, [0.8] * 4)])
    assert [t.name for t in red.data] == ["story · attention", "story · MLP"]


def test_sweep_has_a_line_per_strategy_and_panel():
    rows = [SweepRow(s, r, r, [], [], 1 - r, 1 - r / 2, 2.0, 1 + r, True)
            for s in ("uniform", "swift") for r in (0.0, 0.2, 0.4)]
    fig = sweep_figure(SweepRecord("story", 10, 2, 32, rows), highlight=0.2)
    assert len(fig.data) == 8  # 2 strategies x 4 panels
    speed = [t for t in fig.data if t.xaxis == "x4" and t.name == "swift"][0]
    assert list(speed.x) == [0.0, 0.2, 0.4] and list(speed.y) == [1.0, 1.2, 1.4]


def test_skip_sets_and_transfer():
    fig = skip_sets_heatmap({"story": SkipSet((1,), (2,), 4), "code": SkipSet((2,), (), 4)})
    assert list(fig.data[0].z[0]) == [0, 1, 0, 0, 0, 0, 1, 0]
    t = transfer_matrix({("story", "story"): 1.47, ("story", "reasoning"): 1.01,
                         ("reasoning", "story"): 1.2, ("reasoning", "reasoning"): 1.45})
    assert list(t.data[0].y) == ["story", "reasoning"] and t.data[0].z[0][1] == 1.01


def test_trajectory_stream_latency():
    steps = [StepRecord(0, "start", [1], [], 0.5, False, 0.5, 0.01),
             StepRecord(1, "random", [2], [], 0.6, True, 0.6, 0.01),
             StepRecord(2, "bayes", [3], [], 0.55, False, 0.6, 0.01)]
    fig = trajectory_figure(Trajectory(4, {}, steps, "max_steps"))
    assert [t.name for t in fig.data] == ["start", "random", "bayes", "best so far"]
    assert "max_steps" in fig.layout.title.text
    recs = [PromptRecord(i, "optimize" if i < 2 else "accelerate", 10, 1.0, 10.0, 2.0, 0.8, 0.1, 0.9, {})
            for i in range(4)]
    s = stream_figure(recs)
    assert len(s.data) == 2 and s.layout.shapes[0].x0 == 1.5
    lat = latency_figure({"optimize": 0.01, "draft": 0.6, "verify": 0.3, "other": 0.09, "ms_per_token": 30.9})
    assert list(lat.data[0].y) == ["optimize", "draft", "verify", "other"]
