"""Figure builders: records in, figures with the expected traces out."""

from swiftlab import SkipSet
import math

import pytest

from swiftlab.analysis.figures import (bench_figure, importance_heatmap, latency_figure, redundancy_figure, skip_sets_heatmap,
                              stream_figure, sweep_figure, trajectory_figure, transfer_matrix)
from swiftlab.analysis.probes import ImportanceRecord, RedundancyRecord, SweepRecord, SweepRow
from swiftlab.search.skipsearch import StepRecord, Trajectory
from swiftlab.search.stream import PromptRecord


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
    one = skip_sets_heatmap({"best": SkipSet((1,), (2,), 4)}, by_kind=True).data[0]
    assert [list(r) for r in one.z] == [[0, 1, 0, 0], [0, 0, 1, 0]] and list(one.y) == ["attention", "MLP"]
    t = transfer_matrix({("story", "story"): 1.47, ("story", "reasoning"): 1.01,
                         ("reasoning", "story"): 1.2, ("reasoning", "reasoning"): 1.45})
    assert list(t.data[0].y) == ["story", "reasoning"] and t.data[0].customdata[0][1] == 1.01
    assert t.data[0].text[0][1] == "1.01×"


def test_transfer_colours_are_log_scaled_and_centred_at_one():
    t = transfer_matrix({("a", "a"): 2.0, ("a", "b"): 0.5, ("b", "a"): 1.0, ("b", "b"): 1.2},
                        spread={("a", "a"): (1.8, 2.3), ("a", "b"): (0.4, 0.6), ("b", "a"): (0.9, 1.1),
                                ("b", "b"): (1.1, 1.3)})
    h = t.data[0]
    assert h.zmid == 0 and h.z[0][0] == 1.0 and h.z[0][1] == -1.0 and h.z[1][0] == 0.0  # log2: 2× and 0.5× mirror
    assert h.zmin == -h.zmax and "(0.40–0.60)" in h.text[0][1]
    assert "1×" in h.colorbar.ticktext and "log" in h.colorbar.title.text


def test_importance_colour_scale_is_not_saturated_by_one_sublayer():
    # issue 14: layer 0's MLP dropped matchness by ~0.9 and painted every other cell white
    rec = ImportanceRecord("story", 8, 2, 8, [0.0, 0.1, 0.05, 0.12, 0.08, 0.1, 0.06, 0.2],
                           [0.9, 0.02, 0.1, 0.15, 0.04, 0.11, 0.09, 0.3], [0] * 8, [0] * 8)
    h = importance_heatmap([rec]).data[0]
    assert h.zmin == 0 and h.zmax < 0.5 and h.zmax >= 0.15  # capped near the 90th percentile, not at 0.9
    assert "capped" in h.colorbar.title.text and list(h.z[1])[0] == 0.9  # the value itself is kept


def test_sweep_titles_do_not_overlap_and_speedup_has_error_bars():
    rows = [SweepRow("uniform", r, r, [], [], 1 - r, 0.8, 2.0, 1 + r, True, 0.9 + r, 1.2 + r) for r in (0.2, 0.4)]
    fig = sweep_figure(SweepRecord("story", 10, 3, 32, rows, repeats=2))
    # x-axis titles only under the lower row: none sits between an upper panel and a lower panel's title
    assert fig.layout.xaxis.title.text is None and fig.layout.xaxis2.title.text is None
    assert fig.layout.xaxis3.title.text == "skip ratio r"
    lower_titles = [a for a in fig.layout.annotations if a.text in ("tokens per pass",
                                                                    "speedup vs AR (median, min–max)")]
    assert lower_titles and all(a.y < fig.layout.yaxis.domain[0] - 0.05 for a in lower_titles)
    speed = [t for t in fig.data if t.xaxis == "x4"][0]
    assert list(speed.error_y.array) == pytest.approx([0.2, 0.2])
    assert list(speed.error_y.arrayminus) == pytest.approx([0.1, 0.1])
    assert fig.layout.yaxis4.type == "log" and "3 prompts × 2 repeats" in fig.layout.title.text


def test_bench_figure_has_spread_on_a_log_axis():
    fig = bench_figure({"swift": (1.4, 1.1, 1.9), "uniform": (0.9, 0.7, 1.0)}, "story")
    bar = fig.data[0]  # one point per method
    assert list(bar.y) == [1.4, 0.9] and list(bar.error_y.array) == pytest.approx([0.5, 0.1])
    assert fig.layout.yaxis.type == "log" and math.isclose(fig.layout.shapes[0].y0, 1.0)


def test_trajectory_stream_latency():
    steps = [StepRecord(0, "start", [1], [], 0.5, False, 0.5, 0.01),
             StepRecord(1, "random", [2], [], 0.6, True, 0.6, 0.01),
             StepRecord(2, "bayes", [3], [], 0.55, False, 0.6, 0.01)]
    fig = trajectory_figure(Trajectory(4, {}, steps, "max_steps"))
    assert [t.name for t in fig.data] == ["random", "Bayesian", "best so far", "start"]
    assert "max_steps" in fig.layout.title.text and fig.layout.yaxis.title.text == "matchness"
    empty = trajectory_figure(Trajectory(4, {}, steps[:1]))
    assert len(empty.data) == 4 and list(empty.data[1].x) == []  # the same traces before any Bayesian step
    recs = [PromptRecord(i, "optimize" if i < 2 else "accelerate", 10, 1.0, 10.0, 2.0, 0.8, 0.1, 0.9, {})
            for i in range(4)]
    s = stream_figure(recs)
    optimize, accelerate = s.data[0], s.data[1]  # tokens/s per prompt, by phase
    assert list(optimize.x) == [0, 1] and list(accelerate.x) == [2, 3] and list(accelerate.y) == [10.0, 10.0]
    assert len(s.data) == 4 and s.layout.shapes[0].x0 == 1.5 and s.layout.yaxis.title.text == "tokens/s"
    lat = latency_figure({"optimize": 0.01, "draft": 0.6, "verify": 0.3, "other": 0.09, "ms_per_token": 30.9})
    assert list(lat.data[0].y) == ["optimize", "draft", "verify", "other"]
