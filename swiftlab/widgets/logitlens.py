"""A logit lens by sub-layer: what the model would predict at one position if it stopped after each
attention and MLP sub-layer, next to the skip set."""

from __future__ import annotations

import html

import ipywidgets as w
import plotly.graph_objects as go

from ..api import encode_prompt
from ..analysis.inside import LensRecord, logit_lens
from ..engine.skipset import SkipSet
from .common import ErrorLine, widget_skip_set

COLOURS = {"kept": "#0550ae", "skipped": "#cf222e", "embedding": "#777"}


def lens_figure(record: LensRecord, pieces: list[str]) -> go.Figure:
    """One horizontal bar per point in the residual stream (top to bottom = input to output): the
    probability of the full model's final prediction there, the top-1 token written on the bar,
    skipped sub-layers in red. `pieces`: the text of each point's top-1 token."""
    final = record.final_token_probs
    fig = go.Figure()
    for kind in COLOURS:
        rows = [0] if kind == "embedding" else [i for i, s in enumerate(record.skipped)
                                                 if i > 0 and s == (kind == "skipped")]
        fig.add_bar(y=[record.labels[i] for i in rows], x=[final[i] for i in rows], orientation="h",
                    name={"kept": "sub-layer kept by the drafter", "skipped": "sub-layer the drafter skips",
                          "embedding": "embedding (before layer 0)"}[kind],
                    marker_color=COLOURS[kind], text=[f"top-1 {pieces[i]!r} ({record.top_probs[i]:.2f})" for i in rows],
                    textposition="outside", cliponaxis=False, constraintext="none", textfont=dict(size=11),
                    hovertemplate="after %{y}: p(final token) = %{x:.3f}<extra></extra>")
    fig.update_yaxes(categoryorder="array", categoryarray=record.labels, autorange="reversed",
                     title_text="residual stream after sub-layer")
    fig.update_xaxes(title_text="probability of the full model's prediction", range=[0, 1.45],
                     tickvals=[0, 0.25, 0.5, 0.75, 1.0])
    fig.update_layout(height=max(360, 18 * len(record.labels) + 140), bargap=0.25, barmode="overlay",
                      legend=dict(orientation="h", y=1.04, yanchor="bottom"), margin=dict(t=70, r=20),
                      title=dict(text=f"logit lens: final prediction {pieces[-1]!r}", y=0.99))
    return fig


class LogitLens(w.VBox):
    """Pick a position of the prompt; see the prediction form sub-layer by sub-layer."""

    def __init__(self, model, tokenizer, prompt: str = "Story: Once upon a time, there was a little girl named Anna.",
                 skip_set: SkipSet | None = None):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.model, self.tokenizer = model, tokenizer
        self.skip_set = widget_skip_set(model, skip_set)
        self.ids = encode_prompt(tokenizer, prompt)
        self.position = w.IntSlider(value=len(self.ids) - 1, min=0, max=len(self.ids) - 1, description="position",
                                    continuous_update=False)
        self.context = w.HTML()
        self.figure = go.FigureWidget()
        super().__init__([self.position, self.context, self.figure, self.errors])
        self.position.observe(self.errors.guard(lambda _: self.show()), "value")
        self.show()

    def show(self) -> LensRecord:
        """Run the lens on the prompt up to the slider's position and redraw; returns the record (also `record`)."""
        self.record = logit_lens(self.model, self.ids[:self.position.value + 1], self.skip_set)
        pieces = [self.tokenizer.decode([t]) for t in self.record.top_tokens]
        seen = html.escape(self.tokenizer.decode(self.ids[:self.position.value + 1])[-80:])
        self.context.value = (f"predicting the token after <code>…{seen}</code>; red sub-layers are the ones the "
                              f"drafter skips ({self.skip_set}): where a bar hardly changes, that sub-layer adds "
                              f"little to this prediction")
        fresh = lens_figure(self.record, pieces)
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(fresh.data)
            self.figure.layout = fresh.layout
        return self.record
