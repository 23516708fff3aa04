"""Figures: pure functions from records to plotly figures (no model, no I/O).

The widgets show these same figures (as FigureWidgets) and `swiftlab figures` writes them to HTML,
so a figure looks the same wherever it is drawn.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..search.skipsearch import Trajectory
from ..engine.skipset import SkipSet

COLOURS = {"uniform": "#1f77b4", "random": "#7f7f7f", "early_exit": "#d62728", "offline_bo": "#9467bd",
           "swift": "#2ca02c", "bayes": "#ff7f0e", "start": "#000000"}


def importance_heatmap(records, clip_percentile: float = 90) -> go.Figure:
    """Matchness lost by skipping each sub-layer alone: rows task × {attention, MLP}, columns layers.

    The colour scale stops at a percentile of the drops (hover shows the true values): one sub-layer
    whose loss is far larger (layer 0's MLP, typically) would otherwise paint every other cell white."""
    z, labels = [], []
    for r in records:
        z += [r.attention_drop, r.mlp_drop]
        labels += [f"{r.task or 'task'} · attention", f"{r.task or 'task'} · MLP"]
    cap = robust_max([v for row in z for v in row], clip_percentile)
    fig = go.Figure(go.Heatmap(z=z, y=labels, x=list(range(records[0].num_layers)), colorscale="Reds",
                               zmin=0.0, zmax=cap,
                               colorbar={"title": f"matchness drop<br>(colour capped at<br>"
                                                  f"{clip_percentile:g}th pct = {cap:.2f})"}))
    # rows read top-down in the order given (plotly draws the first row at the bottom otherwise)
    return fig.update_layout(title="Sub-layer importance (skip one at a time)", xaxis_title="layer",
                             yaxis_autorange="reversed")


def robust_max(values: list[float], percentile: float) -> float:
    """The `percentile`-th value (nearest rank) of `values`, at least a small positive number."""
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(percentile / 100 * (len(ordered) - 1))))
    return max(ordered[rank], 1e-6)


def redundancy_figure(records) -> go.Figure:
    """Cosine similarity of the hidden state before and after each sub-layer, against the layer: one line per
    `RedundancyRecord` (probes.redundancy) and sub-layer kind, attention solid and MLP dotted."""
    fig = go.Figure()
    for r in records:
        for kind, values, dash in (("attention", r.attention_cosine, "solid"), ("MLP", r.mlp_cosine, "dot")):
            fig.add_trace(go.Scatter(x=list(range(r.num_layers)), y=values, mode="lines+markers",
                                     name=f"{r.task or 'task'} · {kind}", line={"dash": dash}))
    return fig.update_layout(title="Representational redundancy: cos(hidden before, hidden after) per sub-layer",
                             xaxis_title="layer", yaxis_title="cosine similarity")


def sweep_figure(record, highlight: float | None = None) -> go.Figure:
    """Matchness, acceptance, tokens per pass and speedup against the skip ratio, per strategy.
    Speedup is drawn on a log axis around 1× with its min–max over prompts and repeats as error bars."""
    panels = [("matchness", "matchness"), ("acceptance_rate", "acceptance"),
              ("mean_accepted_tokens", "tokens per pass"), ("speedup", "speedup vs AR (median, min–max)")]
    # room between the rows, so the lower panels' titles do not sit on the upper x-axis titles
    fig = make_subplots(rows=2, cols=2, subplot_titles=[title for _, title in panels], vertical_spacing=0.2,
                        horizontal_spacing=0.12)
    strategies = list(dict.fromkeys(r.strategy for r in record.rows))
    for n, (field, _) in enumerate(panels):
        for strategy in strategies:
            rows = sorted((r for r in record.rows if r.strategy == strategy), key=lambda r: r.ratio)
            error = None
            if field == "speedup" and all(r.speedup_min is not None for r in rows):
                error = {"type": "data", "symmetric": False, "array": [r.speedup_max - r.speedup for r in rows],
                         "arrayminus": [r.speedup - r.speedup_min for r in rows]}
            fig.add_trace(go.Scatter(x=[r.ratio for r in rows], y=[getattr(r, field) for r in rows],
                                     error_y=error, mode="lines+markers", name=strategy, legendgroup=strategy,
                                     showlegend=n == 0, line={"color": COLOURS.get(strategy)}),
                          row=n // 2 + 1, col=n % 2 + 1)
        if highlight is not None:
            fig.add_vline(x=highlight, line_dash="dash", line_color="grey", row=n // 2 + 1, col=n % 2 + 1)
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey", row=2, col=2)
    fig.update_yaxes(type="log", row=2, col=2)
    fig.update_xaxes(title="skip ratio r", row=2)  # one axis title per column, under the lower row
    return fig.update_layout(title=f"Skip-ratio sweep ({record.task or 'task'}): {record.prompts} prompts × "
                                   f"{getattr(record, 'repeats', 1)} repeats", height=620)


def skip_sets_heatmap(sets: dict[str, SkipSet], by_kind: bool = False) -> go.Figure:
    """Which sub-layers each skip set switches off. Rows are sets, columns attention then MLP per layer;
    with `by_kind`, two rows per set (attention above MLP) and columns layers, as the editor's grid."""
    L = next(iter(sets.values())).num_layers
    rows = lambda s: ([int(i in s.attention) for i in range(L)], [int(i in s.mlp) for i in range(L)])
    if by_kind:
        z = [row for s in sets.values() for row in rows(s)]
        y = [f"{name} · {kind}" if len(sets) > 1 else kind for name in sets for kind in ("attention", "MLP")]
        x, title = list(range(L)), "Skipped sub-layers (layer by layer)"
    else:
        z = [sum(rows(s), []) for s in sets.values()]
        y, x = list(sets), [f"A{i}" for i in range(L)] + [f"M{i}" for i in range(L)]
        title = "Skipped sub-layers per task (A = attention, M = MLP)"
    fig = go.Figure(go.Heatmap(z=z, x=x, y=y, colorscale=[[0, "#f7f7f7"], [1, "#2c7fb8"]], showscale=False,
                               zmin=0, zmax=1, xgap=1, ygap=1))
    return fig.update_layout(title=title, yaxis_autorange="reversed")


def transfer_matrix(speedups: dict[tuple[str, str], float],
                    spread: dict[tuple[str, str], tuple[float, float]] | None = None) -> go.Figure:
    """Speedup when the set optimized on task A (row) decodes task B (column).

    Colour is log2(speedup) centred on 1× (0.5× and 2× equally far from white); `spread` adds each cell's
    min–max to its label."""
    sources = list(dict.fromkeys(a for a, _ in speedups))
    targets = list(dict.fromkeys(b for _, b in speedups))
    values = [[speedups.get((a, b)) for b in targets] for a in sources]
    return go.Figure(speedup_heatmap(values, targets, sources, spread and [[spread.get((a, b)) for b in targets]
                                                                         for a in sources])).update_layout(
        title="Cross-task transfer: optimized on (row), decoding (column)", xaxis_title="decoded task",
        yaxis_title="skip set optimized on", yaxis_autorange="reversed")


SPEEDUP_TICKS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)


def speedup_heatmap(values, x, y, spread=None) -> go.Heatmap:
    """A heatmap of speedups on a log colour scale centred at 1×, labelled with the value (and min–max)."""
    logs = [[math.log2(v) if v else None for v in row] for row in values]
    reach = max([abs(v) for row in logs for v in row if v is not None] + [math.log2(1.5)])
    ticks = [t for t in SPEEDUP_TICKS if abs(math.log2(t)) <= reach + 1e-9]

    def label(i, j):
        v = values[i][j]
        if v is None:
            return ""
        low_high = spread[i][j] if spread and spread[i][j] else None
        return f"{v:.2f}×" + (f"<br>({low_high[0]:.2f}–{low_high[1]:.2f})" if low_high else "")

    return go.Heatmap(z=logs, x=x, y=y, colorscale="RdBu", zmid=0.0, zmin=-reach, zmax=reach,
                      customdata=values, hovertemplate="%{y} → %{x}: %{customdata:.2f}×<extra></extra>",
                      text=[[label(i, j) for j in range(len(x))] for i in range(len(y))], texttemplate="%{text}",
                      colorbar={"title": "speedup<br>(log scale)", "tickvals": [math.log2(t) for t in ticks],
                                "ticktext": [f"{t:g}×" for t in ticks]})


def trajectory_figure(trajectory: Trajectory) -> go.Figure:
    """Matchness of every proposal, random and Bayesian marked, and the best so far.
    Always the same four traces (random, Bayesian, best so far, start), empty where there are none yet,
    so a live view can update them in place."""
    steps = trajectory.steps
    fig = go.Figure()
    for kind, symbol in (("random", "circle"), ("bayes", "star")):
        pts = [s for s in steps if s.kind == kind]
        fig.add_trace(go.Scatter(x=[s.iteration for s in pts], y=[s.matchness for s in pts], mode="markers",
                                 name=kind if kind != "bayes" else "Bayesian",
                                 marker={"symbol": symbol, "color": COLOURS.get(kind, "#7f7f7f"),
                                         "size": 12 if kind == "bayes" else 6}))
    fig.add_trace(go.Scatter(x=[s.iteration for s in steps], y=[s.best_matchness for s in steps], mode="lines",
                             name="best so far", line={"color": COLOURS["swift"], "shape": "hv"}))
    starts = [s for s in steps if s.kind == "start"]  # the set the search starts from (again after a re-open)
    fig.add_trace(go.Scatter(x=[s.iteration for s in starts], y=[s.matchness for s in starts], mode="markers",
                             name="start", marker={"symbol": "diamond", "color": COLOURS["start"], "size": 9}))
    title = "Skip-set search" + (f" (stopped: {trajectory.stopped_because})" if trajectory.stopped_because
                                 else "" if steps else " (no proposals yet)")
    return fig.update_layout(title=title, xaxis_title="proposal", yaxis_title="matchness", yaxis_range=[0, 1.02])


def stream_figure(records, stopped_at: int | None = None) -> go.Figure:
    """Per prompt served: tokens/s (coloured by phase) above, tokens per pass and acceptance below,
    with the point where optimization stopped."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        specs=[[{}], [{"secondary_y": True}]],
                        subplot_titles=["tokens/s per prompt", "tokens per pass and acceptance"])
    for phase, colour in (("optimize", COLOURS["bayes"]), ("accelerate", COLOURS["swift"])):
        mine = [r for r in records if r.phase == phase]
        fig.add_trace(go.Bar(x=[r.index for r in mine], y=[r.tokens_per_s for r in mine], marker_color=colour,
                             name=f"tokens/s ({phase} phase)"), row=1, col=1)
    x = [r.index for r in records]
    fig.add_trace(go.Scatter(x=x, y=[r.mean_accepted_tokens for r in records], name="tokens per pass",
                             mode="lines+markers"), row=2, col=1, secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=[r.acceptance_rate for r in records], name="acceptance", mode="lines+markers"),
                  row=2, col=1, secondary_y=True)
    stop = stopped_at if stopped_at is not None else next((r.index for r in records if r.phase == "accelerate"), None)
    if stop is not None:
        for row in (1, 2):
            fig.add_vline(x=stop - 0.5, line_dash="dash", row=row, col=1,
                          annotation_text="optimization stopped" if row == 1 else None)
    fig.update_yaxes(title="tokens/s", row=1, col=1)
    fig.update_yaxes(title="tokens per pass", row=2, col=1, secondary_y=False)
    fig.update_yaxes(title="acceptance", row=2, col=1, secondary_y=True, range=[0, 1.05], tickformat=".0%",
                     tickmode="auto", showgrid=False)
    return fig.update_layout(title="Serving a stream of prompts", height=560).update_xaxes(title="prompt", row=2)


def bench_figure(spread: dict[str, tuple[float, float, float]], task: str = "") -> go.Figure:
    """Speedup over autoregressive decoding per method: median point, min–max whiskers, log axis around 1×."""
    methods = list(spread)
    med = [spread[m][0] for m in methods]
    # points, not bars: a bar's length means nothing on a log axis
    fig = go.Figure(go.Scatter(x=methods, y=med, text=[f"  {v:.2f}×" for v in med], textposition="middle right",
                               mode="markers+text", marker={"size": 12, "color": COLOURS["swift"]},
                               error_y={"type": "data", "symmetric": False, "width": 8,
                                        "array": [spread[m][2] - spread[m][0] for m in methods],
                                        "arrayminus": [spread[m][0] - spread[m][1] for m in methods]}))
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    return fig.update_layout(title=f"Speedup over autoregressive decoding{f' ({task})' if task else ''}: "
                                   "median over prompts × repeats, min–max", yaxis_type="log",
                             yaxis_title="speedup (log scale)", xaxis_title="method",
                             xaxis_range=[-0.5, len(methods) - 0.3])  # room for the last label


def latency_figure(shares: dict[str, float]) -> go.Figure:
    """Horizontal bars of the time shares in optimize, draft, verify and other (probes.latency_breakdown's
    dict; a missing share is a KeyError), titled with its `ms_per_token` (0 where absent)."""
    parts = ["optimize", "draft", "verify", "other"]
    fig = go.Figure(go.Bar(x=[shares[p] * 100 for p in parts], y=parts, orientation="h",
                           text=[f"{shares[p]:.1%}" for p in parts], textposition="auto"))
    return fig.update_layout(title=f"Latency per token: {shares.get('ms_per_token', 0):.2f} ms", xaxis_title="% of time")
