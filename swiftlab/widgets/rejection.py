"""Speculative (rejection) sampling at one real position: q, p, min(p, q), the residual, and draws."""

from __future__ import annotations

import html
from collections import Counter

import ipywidgets as w
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..api import encode_prompt
from ..analysis.inside import RejectionRecord, draw_once, rejection_position
from ..engine.skipset import SkipSet
from .common import ErrorLine, widget_skip_set

COLOURS = {"q": "#8250df", "p": "#0550ae", "min": "#1a7f37", "residual": "#cf222e", "emitted": "#777"}


def shown_tokens(record: RejectionRecord, k: int = 6) -> list[int]:
    """The tokens worth a bar: the top k of p and of q, by p."""
    p, q = record.tensors()
    ids = set(torch.topk(p, k).indices.tolist()) | set(torch.topk(q, k).indices.tolist())
    return sorted(ids, key=lambda t: -float(p[t]))


def rejection_figure(record: RejectionRecord, labels: list[str], tokens: list[int], emitted: Counter) -> go.Figure:
    """Top: q, p, min(p, q) and the residual for `tokens` (`labels`: their text); bottom: the share of draws that
    emitted each token (`emitted`: token -> draws) against p, which it tends to."""
    p, q = record.tensors()
    residual = record.residual()
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.22, subplot_titles=(
        f"one position: accept probability = sum min(p, q) = {record.accept_probability:.3f}",
        f"emitted tokens over {sum(emitted.values())} draws vs the full model's p"))
    rows = (("q", "drafter q", q), ("p", "full model p", p), ("min", "min(p, q): accepted mass", torch.minimum(p, q)),
            ("residual", "residual max(p - q, 0), normalised", residual))
    for key, name, values in rows:
        fig.add_bar(x=labels, y=[float(values[t]) for t in tokens], name=name, marker_color=COLOURS[key], row=1, col=1)
    total = max(sum(emitted.values()), 1)
    fig.add_bar(x=labels, y=[emitted[t] / total for t in tokens], name="share of draws emitting it",
                marker_color=COLOURS["emitted"], row=2, col=1)
    fig.add_scatter(x=labels, y=[float(p[t]) for t in tokens], mode="markers", name="p (target)",
                    marker=dict(color=COLOURS["p"], size=10, symbol="line-ew-open", line=dict(width=3)), row=2, col=1)
    fig.update_yaxes(title_text="probability", row=1, col=1)
    fig.update_yaxes(title_text="share", row=2, col=1)
    fig.update_xaxes(title_text="token", tickangle=-30, row=2, col=1)
    fig.update_layout(barmode="group", height=560, legend=dict(orientation="h", y=-0.22), margin=dict(t=50))
    return fig


class RejectionSampling(w.VBox):
    """A drafted token x ~ q is accepted with probability min(1, p(x)/q(x)); if not, the token is drawn
    from the residual. Every draw goes through the engine's accept_sampled."""

    def __init__(self, model, tokenizer, prompt: str = "Story: Once upon a time, there was a little girl named Anna.",
                 skip_set: SkipSet | None = None, temperature: float = 1.0, seed: int = 0, max_new_tokens: int = 32):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.tokenizer = tokenizer
        skip_set = widget_skip_set(model, skip_set)
        self.record = rejection_position(model, encode_prompt(tokenizer, prompt), skip_set, temperature=temperature,
                                         seed=seed, max_new_tokens=max_new_tokens)
        self.tokens = shown_tokens(self.record)
        self.labels = [repr(tokenizer.decode([t])) for t in self.tokens]
        self.generator = torch.Generator().manual_seed(seed)
        self.emitted: Counter = Counter()
        self.accepted = 0
        self.draw_button = w.Button(description="draw again", icon="random")
        self.many_button = w.Button(description="draw 500", icon="forward")
        self.outcome = w.HTML()
        self.figure = go.FigureWidget()
        context = html.escape(tokenizer.decode(self.record.context_ids[-24:]))
        super().__init__([w.HTML(f"position after: <code>…{context}</code>"),
                          w.HBox([self.draw_button, self.many_button]), self.outcome, self.figure, self.errors])
        self.draw_button.on_click(self.errors.guard(lambda _: self.draw()))
        self.many_button.on_click(self.errors.guard(lambda _: self.draw(500)))
        self.draw()

    def draw(self, times: int = 1) -> tuple[int, int, bool]:
        """`times` more rounds of speculative sampling at the position, tallied and redrawn; returns the last one:
        (drafted token, emitted token, accepted?)."""
        for _ in range(times):
            drafted, emitted, accepted = draw_once(self.record, self.generator)
            self.emitted[emitted] += 1
            self.accepted += accepted
        self.last = (drafted, emitted, accepted)
        p, q = self.record.tensors()
        piece = lambda t: html.escape(repr(self.tokenizer.decode([t])))
        ratio = min(1.0, float(p[drafted] / q[drafted])) if q[drafted] > 0 else 1.0
        verdict = (f"<b style='color:#1a7f37'>accepted</b>, emitted {piece(emitted)}" if accepted else
                   f"<b style='color:#cf222e'>rejected</b>, drew {piece(emitted)} from the residual")
        draws = sum(self.emitted.values())
        self.outcome.value = (f"last draw: the drafter drafted {piece(drafted)} (q = {float(q[drafted]):.3f}, "
                              f"p = {float(p[drafted]):.3f}), accepted with probability min(1, p/q) = {ratio:.3f}: "
                              f"{verdict}. Accepted {self.accepted}/{draws} draws ({self.accepted / draws:.1%}; "
                              f"expected {self.record.accept_probability:.1%}).")
        fresh = rejection_figure(self.record, self.labels, self.tokens, self.emitted)
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(fresh.data)
            self.figure.layout = fresh.layout
        return self.last
