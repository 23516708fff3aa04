"""The draft tree of one step beside its tree attention mask (tree.py's own mask), the accepted path marked."""

from __future__ import annotations

import ipywidgets as w
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..api import encode_prompt
from ..engine.decoding import SwiftParams
from ..support.errors import SwiftlabError
from ..analysis.inside import StepTrace, trace_steps
from ..engine.skipset import SkipSet
from ..engine.tree import tree_mask
from .common import ErrorLine, widget_skip_set

STATUS_COLOURS = {"root": "#777", "accepted": "#1a7f37", "rejected": "#cf222e", "bonus": "#0550ae"}


def shown_mask(trace: StepTrace) -> torch.Tensor:
    """tree.py's mask for the step, its prefix columns folded into one (every node sees the whole prefix):
    rows root + nodes, columns prefix + root + nodes; True = attends."""
    mask = tree_mask(trace.tree, trace.position)[0, 0]
    return torch.cat([mask[:, :trace.position].all(dim=1, keepdim=True), mask[:, trace.position:]], dim=1)


def tree_figure(trace: StepTrace, pieces: list[str]) -> go.Figure:
    """Left: the tree (root = pending token, chain along the top, runner-ups below their depth), the
    accepted path in green, the full model's bonus token in blue. Right: the attention mask.
    `pieces`: the text of the root and of every node, in node order."""
    tree, accepted = trace.tree, set(trace.path)
    nodes = tree.nodes()
    row_at_depth: dict[int, int] = {}
    xy = [(0, 0)]
    for i, (_, depth) in enumerate(nodes):
        row = 0 if i < len(tree.chain) else row_at_depth.setdefault(depth, 0) + 1
        if i >= len(tree.chain):
            row_at_depth[depth] = row
        xy.append((depth, -row))
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.12,
                        subplot_titles=("draft tree (root: the pending token)", "tree attention mask"))
    for i, (parent, _) in enumerate(nodes):
        (x0, y0), (x1, y1) = xy[parent + 1], xy[i + 1]
        on_path = i in accepted and (parent < 0 or parent in accepted)
        fig.add_scatter(x=[x0, x1], y=[y0, y1], mode="lines", showlegend=False, hoverinfo="skip",
                        line=dict(color=STATUS_COLOURS["accepted"] if on_path else "#bbb", width=3 if on_path else 1),
                        row=1, col=1)
    status = ["root"] + ["accepted" if i in accepted else "rejected" for i in range(len(nodes))]
    last = max(trace.path) + 1 if trace.path else 0
    bonus_xy = (xy[last][0] + 1, xy[last][1])
    has_bonus = len(trace.new_tokens) > len(trace.path)  # not after an accepted end-of-text
    if has_bonus:
        fig.add_scatter(x=[xy[last][0], bonus_xy[0]], y=[xy[last][1], bonus_xy[1]], mode="lines", showlegend=False,
                        line=dict(color=STATUS_COLOURS["bonus"], dash="dot"), hoverinfo="skip", row=1, col=1)
    for kind in [k for k in STATUS_COLOURS if k != "bonus" or has_bonus]:
        members = [j for j, s in enumerate(status) if s == kind]
        points = [bonus_xy] if kind == "bonus" else [xy[j] for j in members]
        text = [repr(pieces[-1])] if kind == "bonus" else [repr(pieces[j]) for j in members]
        label = {"root": "pending token", "accepted": "accepted", "rejected": "verified, rejected",
                 "bonus": "bonus (full model's own)"}[kind]
        fig.add_scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="markers+text", text=text,
                        textposition="top center", name=label, marker=dict(size=14, color=STATUS_COLOURS[kind]),
                        row=1, col=1)
    mask = shown_mask(trace).int()
    names = [f"root {pieces[0]!r}"] + [f"n{i} {pieces[i + 1]!r}" for i in range(len(nodes))]
    on_path = [0] + [i + 1 for i in trace.path]
    z = [[float(mask[r, c]) * (2.0 if r in on_path and (c == 0 or c - 1 in on_path) else 1.0)
          for c in range(mask.shape[1])] for r in range(mask.shape[0])]
    fig.add_heatmap(z=z, x=[f"prefix ×{trace.position}"] + names, y=names, zmin=0, zmax=2, showscale=False,
                    colorscale=[[0, "#f6f8fa"], [0.5, "#9ecbff"], [1, STATUS_COLOURS["accepted"]]],
                    xgap=1, ygap=1, hovertemplate="%{y} attends to %{x}: %{z}<extra></extra>", row=1, col=2)
    depth_max = max((d for _, d in nodes), default=0) + 1
    fig.update_xaxes(title_text="depth (tokens ahead)", dtick=1, range=[-0.5, depth_max + 0.7], row=1, col=1)
    fig.update_yaxes(title_text="runner-ups below the chain", showticklabels=False,
                     range=[min(y for _, y in xy) - 0.7, 0.8], row=1, col=1)
    fig.update_xaxes(title_text="key: attended to", tickangle=-45, row=1, col=2)
    fig.update_yaxes(title_text="query: node", autorange="reversed", row=1, col=2)
    fig.update_layout(height=420, legend=dict(orientation="h", y=-0.25), margin=dict(t=60, b=40))
    return fig


class DraftTreeView(w.VBox):
    """Pick a pass of a real SWIFT run; see its draft tree and the mask it was verified with."""

    def __init__(self, model, tokenizer, prompt: str = "Story: Once upon a time, there was a little girl named Anna.",
                 skip_set: SkipSet | None = None, max_new_tokens: int = 32):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.tokenizer = tokenizer
        skip_set = widget_skip_set(model, skip_set)
        self.prompt_ids = encode_prompt(tokenizer, prompt)
        self.traces = [t for t in trace_steps(model, self.prompt_ids, skip_set, max_new_tokens=max_new_tokens,
                                              swift=SwiftParams(verify="tree", fallback=False)) if t.chain]
        if not self.traces:
            raise SwiftlabError("this run drafted nothing (it ended at once): try a longer prompt or more tokens")
        first = next((i for i, t in enumerate(self.traces) if any(t.siblings) and len(t.chain) > 1), 0)
        self.pass_slider = w.IntSlider(value=first, min=0, max=len(self.traces) - 1, description="drafted pass",
                                       style={"description_width": "initial"})
        self.info = w.HTML()
        self.figure = go.FigureWidget()
        super().__init__([self.pass_slider, self.info, self.figure, self.errors])
        self.pass_slider.observe(self.errors.guard(lambda _: self.show()), "value")
        self.show()

    @property
    def trace(self) -> StepTrace:
        return self.traces[self.pass_slider.value]

    def pieces(self, trace: StepTrace) -> list[str]:
        """The text of `trace`'s root (the pending token), of each tree node in node order, and of its last emitted
        token (the bonus, where there is one): the labels `tree_figure` takes."""
        decode = lambda t: self.tokenizer.decode([t])
        return [decode(trace.root)] + [decode(t) for t in trace.tree.tokens()] + [decode(trace.new_tokens[-1])]

    def show(self) -> None:
        """Redraw the tree, the mask and the line above them for the pass the slider picks."""
        trace = self.trace
        self.mask = shown_mask(trace)
        fresh = tree_figure(trace, self.pieces(trace))
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(fresh.data)
            self.figure.layout = fresh.layout
        self.info.value = (f"pass {trace.index}: {len(trace.chain)} drafted + {trace.tree.size - len(trace.chain)} "
                           f"runner-ups verified in one full pass; {len(trace.path)} accepted, then the bonus token. "
                           f"Each node (row) attends to the prefix, the root and its own ancestors only.")
