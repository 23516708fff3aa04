"""The KV cache across one draft/verify cycle: entries per layer after drafting, verification and rollback."""

from __future__ import annotations

import ipywidgets as w
import plotly.graph_objects as go

from ..api import encode_prompt
from ..engine.decoding import SwiftParams
from ..support.errors import SwiftlabError
from ..analysis.inside import StepTrace, trace_steps
from ..engine.skipset import SkipSet
from .common import ErrorLine, widget_skip_set

STAGE_NAMES = {"drafted": "after drafting", "verified": "after verification", "kept": "after rollback"}
STAGE_COLOURS = {"drafted": "#8250df", "verified": "#0550ae", "kept": "#1a7f37"}


def kv_figure(trace: StepTrace, skip_set: SkipSet) -> go.Figure:
    """Per layer, the cache entries past the n positions held before the step, at each stage."""
    layers = list(range(len(trace.cache_lengths["start"])))
    ticks = [f"{i} (attn skipped)" if i in skip_set.attention else str(i) for i in layers]
    fig = go.Figure()
    for stage, name in STAGE_NAMES.items():
        fig.add_bar(x=ticks, y=[n - trace.position for n in trace.cache_lengths[stage]], name=name,
                    marker_color=STAGE_COLOURS[stage])
    fig.update_layout(barmode="group", height=380, legend=dict(orientation="h", y=1.12),
                      title=dict(text=f"KV cache in pass {trace.index} (n = {trace.position} positions held before)",
                                 y=0.97),
                      xaxis_title="layer", yaxis_title="entries past the first n", margin=dict(t=80))
    fig.update_xaxes(tickangle=-45)
    return fig


class KVCacheView(w.VBox):
    """Pick a pass of a real SWIFT run; see how many KV entries each layer holds at each stage."""

    def __init__(self, model, tokenizer, prompt: str = "Story: Once upon a time, there was a little girl named Anna.",
                 skip_set: SkipSet | None = None, max_new_tokens: int = 32):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.skip_set = widget_skip_set(model, skip_set)
        traces = trace_steps(model, encode_prompt(tokenizer, prompt), self.skip_set, max_new_tokens=max_new_tokens,
                             swift=SwiftParams(verify="tree", fallback=False))
        self.traces = [t for t in traces if t.chain]  # the passes that drafted
        if not self.traces:
            raise SwiftlabError("this run drafted nothing (it ended at once): try a longer prompt or more tokens")
        # the first pass that drafted several tokens and had some rejected shows every stage best
        first = next((i for i, t in enumerate(self.traces) if 1 < len(t.chain) and len(t.path) < len(t.chain)),
                     next((i for i, t in enumerate(self.traces) if len(t.chain) > 1), 0))
        self.pass_slider = w.IntSlider(value=first, min=0, max=max(len(self.traces) - 1, 0),
                                       description="drafted pass", style={"description_width": "initial"})
        self.info = w.HTML()
        self.figure = go.FigureWidget()
        super().__init__([self.pass_slider, self.figure, self.info, self.errors])
        self.pass_slider.observe(self.errors.guard(lambda _: self.show()), "value")
        self.show()

    @property
    def trace(self) -> StepTrace:
        return self.traces[self.pass_slider.value]

    def show(self) -> None:
        """Redraw the bars and the explanation for the pass the slider picks."""
        trace = self.trace
        fresh = kv_figure(trace, self.skip_set)
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(fresh.data)
            self.figure.layout = fresh.layout
        k = len(trace.chain)
        self.info.value = (
            f"The drafter fed the pending token and {k - 1} of its {k} drafts through the model: every layer whose "
            f"attention ran stored {k} new entries; layers with attention skipped stored none. Verification cut "
            f"every layer back to n and fed the root and all {trace.tree.size} tree nodes through the full model "
            f"({trace.tree.size + 1} entries in every layer). Rollback kept the root and the {len(trace.path)} "
            f"accepted nodes ({len(trace.path) + 1} entries); the bonus token is written by the next pass.")
