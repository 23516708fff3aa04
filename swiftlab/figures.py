"""Figures: pure functions from records to plotly figures (no model, no I/O).

The widgets show these same figures (as FigureWidgets) and `swiftlab figures` writes them to HTML,
so a figure looks the same wherever it is drawn.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .search import Trajectory
from .skipset import SkipSet

COLOURS = {"uniform": "#1f77b4", "random": "#7f7f7f", "early_exit": "#d62728", "offline_bo": "#9467bd",
           "swift": "#2ca02c", "bayes": "#ff7f0e", "start": "#000000"}


def importance_heatmap(records) -> go.Figure:
    """Matchness lost by skipping each sub-layer alone: rows task × {attention, MLP}, columns layers."""
    z, labels = [], []
    for r in records:
        z += [r.attention_drop, r.mlp_drop]
        labels += [f"{r.task or 'task'} · attention", f"{r.task or 'task'} · MLP"]
    fig = go.Figure(go.Heatmap(z=z, y=labels, x=list(range(records[0].num_layers)), colorscale="Reds",
                               colorbar={"title": "matchness<br>drop"}))
    # rows read top-down in the order given (plotly draws the first row at the bottom otherwise)
    return fig.update_layout(title="Sub-layer importance (skip one at a time)", xaxis_title="layer",
                             yaxis_autorange="reversed")


def redundancy_figure(records) -> go.Figure:
    fig = go.Figure()
    for r in records:
        for kind, values, dash in (("attention", r.attention_cosine, "solid"), ("MLP", r.mlp_cosine, "dot")):
            fig.add_trace(go.Scatter(x=list(range(r.num_layers)), y=values, mode="lines+markers",
                                     name=f"{r.task or 'task'} · {kind}", line={"dash": dash}))
    return fig.update_layout(title="Representational redundancy: cos(hidden before, hidden after) per sub-layer",
                             xaxis_title="layer", yaxis_title="cosine similarity")


def sweep_figure(record, highlight: float | None = None) -> go.Figure:
    """Matchness, acceptance, tokens per pass and speedup against the skip ratio, per strategy."""
    panels = [("matchness", "matchness"), ("acceptance_rate", "acceptance"),
              ("mean_accepted_tokens", "tokens per pass"), ("speedup", "speedup vs AR")]
    fig = make_subplots(rows=2, cols=2, subplot_titles=[title for _, title in panels])
    strategies = list(dict.fromkeys(r.strategy for r in record.rows))
    for n, (field, _) in enumerate(panels):
        for strategy in strategies:
            rows = sorted((r for r in record.rows if r.strategy == strategy), key=lambda r: r.ratio)
            fig.add_trace(go.Scatter(x=[r.ratio for r in rows], y=[getattr(r, field) for r in rows],
                                     mode="lines+markers", name=strategy, legendgroup=strategy, showlegend=n == 0,
                                     line={"color": COLOURS.get(strategy)}), row=n // 2 + 1, col=n % 2 + 1)
        if highlight is not None:
            fig.add_vline(x=highlight, line_dash="dash", line_color="grey", row=n // 2 + 1, col=n % 2 + 1)
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey", row=2, col=2)
    return fig.update_layout(title=f"Skip-ratio sweep ({record.task or 'task'})").update_xaxes(title="skip ratio r")


def skip_sets_heatmap(sets: dict[str, SkipSet]) -> go.Figure:
    """Which sub-layers each task's skip set switches off: rows tasks, columns attention / MLP per layer."""
    names = list(sets)
    L = next(iter(sets.values())).num_layers
    z = [[int(i in s.attention) for i in range(L)] + [int(i in s.mlp) for i in range(L)] for s in sets.values()]
    x = [f"A{i}" for i in range(L)] + [f"M{i}" for i in range(L)]
    fig = go.Figure(go.Heatmap(z=z, x=x, y=names, colorscale=[[0, "#f7f7f7"], [1, "#2c7fb8"]], showscale=False,
                               xgap=1, ygap=1))
    return fig.update_layout(title="Skipped sub-layers per task (A = attention, M = MLP)", yaxis_autorange="reversed")


def transfer_matrix(speedups: dict[tuple[str, str], float]) -> go.Figure:
    """Speedup when the set optimized on task A (row) decodes task B (column)."""
    sources = list(dict.fromkeys(a for a, _ in speedups))
    targets = list(dict.fromkeys(b for _, b in speedups))
    z = [[speedups.get((a, b)) for b in targets] for a in sources]
    fig = go.Figure(go.Heatmap(z=z, x=targets, y=sources, colorscale="RdYlGn", zmid=1.0,
                               text=[[f"{v:.2f}×" if v is not None else "" for v in row] for row in z],
                               texttemplate="%{text}", colorbar={"title": "speedup"}))
    return fig.update_layout(title="Cross-task transfer: optimized on (row), decoding (column)",
                             xaxis_title="decoded task", yaxis_title="skip set optimized on",
                             yaxis_autorange="reversed")


def trajectory_figure(trajectory: Trajectory) -> go.Figure:
    """Matchness of every proposal, random and Bayesian marked, and the best so far."""
    steps = trajectory.steps
    fig = go.Figure()
    for kind, symbol in (("start", "diamond"), ("random", "circle"), ("bayes", "star")):
        pts = [s for s in steps if s.kind == kind]
        if pts:
            fig.add_trace(go.Scatter(x=[s.iteration for s in pts], y=[s.matchness for s in pts], mode="markers",
                                     name=kind, marker={"symbol": symbol, "color": COLOURS.get(kind, "#7f7f7f"),
                                                        "size": 9 if kind != "random" else 6}))
    fig.add_trace(go.Scatter(x=[s.iteration for s in steps], y=[s.best_matchness for s in steps], mode="lines",
                             name="best so far", line={"color": COLOURS["swift"], "shape": "hv"}))
    title = "Skip-set search" + (f" (stopped: {trajectory.stopped_because})" if trajectory.stopped_because else "")
    return fig.update_layout(title=title, xaxis_title="iteration", yaxis_title="matchness")


def stream_figure(records, stopped_at: int | None = None) -> go.Figure:
    """Per prompt served: tokens per pass and acceptance, with the point where optimization stopped."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [r.index for r in records]
    fig.add_trace(go.Scatter(x=x, y=[r.mean_accepted_tokens for r in records], name="tokens per pass",
                             mode="lines+markers"), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=[r.acceptance_rate for r in records], name="acceptance", mode="lines+markers"),
                  secondary_y=True)
    stop = stopped_at if stopped_at is not None else next((r.index for r in records if r.phase == "accelerate"), None)
    if stop is not None:
        fig.add_vline(x=stop - 0.5, line_dash="dash", annotation_text="optimization stopped")
    return fig.update_layout(title="Serving a stream of prompts", xaxis_title="prompt")


def latency_figure(shares: dict[str, float]) -> go.Figure:
    parts = ["optimize", "draft", "verify", "other"]
    fig = go.Figure(go.Bar(x=[shares[p] * 100 for p in parts], y=parts, orientation="h",
                           text=[f"{shares[p]:.1%}" for p in parts], textposition="auto"))
    return fig.update_layout(title=f"Latency per token: {shares.get('ms_per_token', 0):.2f} ms", xaxis_title="% of time")
