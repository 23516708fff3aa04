"""The expected-speedup calculator: acceptance α, draft length γ and draft cost c give tokens per pass
and speedup; "use measured" fills them from a real run and puts the measured speedup beside the formula."""

from __future__ import annotations

import ipywidgets as w
import plotly.graph_objects as go

from ..api import encode_prompt
from ..analysis.inside import SpeedupRecord, expected_speedup, expected_tokens_per_pass, measure_speedup
from ..engine.skipset import SkipSet
from ..tasks import get_examples
from .common import ErrorLine, widget_skip_set

GAMMAS = list(range(1, 17))


def speedup_figure(alpha: float, gamma: int, cost: float, measured: SpeedupRecord | None = None) -> go.Figure:
    """Expected speedup against the draft length γ = 1..16 at acceptance `alpha` and draft cost `cost`, `gamma`
    marked; with `measured`, the curve with its measured verifying-pass cost and the measured median speedup."""
    fig = go.Figure()
    fig.add_scatter(x=GAMMAS, y=[expected_speedup(alpha, g, cost) for g in GAMMAS], mode="lines",
                    name=f"expected (α = {alpha:.2f}, c = {cost:.2f})", line=dict(color="#0550ae"))
    fig.add_scatter(x=[gamma], y=[expected_speedup(alpha, gamma, cost)], mode="markers", name=f"γ = {gamma}",
                    marker=dict(size=12, color="#0550ae"))
    if measured is not None:
        m = measured
        fig.add_scatter(x=GAMMAS, y=[expected_speedup(m.alpha, g, m.cost, m.verify_cost) for g in GAMMAS],
                        mode="lines", line=dict(color="#cf222e", dash="dash"),
                        name=f"expected with the measured verifying pass (v = {m.verify_cost:.2f})")
        med = measured.median
        fig.add_scatter(x=[measured.gamma], y=[med], mode="markers", marker=dict(size=12, color="#cf222e",
                        symbol="diamond"), name=f"measured: median of {measured.runs} runs, min–max bar",
                        error_y=dict(type="data", symmetric=False, array=[max(measured.speedups) - med],
                                     arrayminus=[med - min(measured.speedups)]))
    fig.add_hline(y=1.0, line=dict(color="#999", dash="dot"))
    fig.update_layout(height=400, xaxis_title="draft length γ (drafted tokens per pass)",
                      yaxis_title="speedup over plain decoding", legend=dict(orientation="h", y=1.02, yanchor="bottom"),
                      margin=dict(t=90))
    return fig


class SpeedupCalculator(w.VBox):
    """Sliders for acceptance α, draft length γ and draft cost c and the speedup the formula expects from them;
    "use measured" fills them from real runs of `skip_set` on `prompts` of `task` (`use_measured`)."""
    def __init__(self, model, tokenizer, skip_set: SkipSet | None = None, task: str = "story", prompts: int = 3,
                 repeats: int = 2, max_new_tokens: int = 48):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.model = model
        self.skip_set = widget_skip_set(model, skip_set)
        self.prompt_ids = [encode_prompt(tokenizer, ex.prompt) for ex in get_examples(task, prompts)]
        self.repeats, self.max_new_tokens = repeats, max_new_tokens
        style = {"description_width": "initial"}
        self.alpha = w.FloatSlider(value=0.8, min=0.0, max=0.99, step=0.01, description="acceptance α", style=style)
        self.gamma = w.IntSlider(value=4, min=1, max=GAMMAS[-1], description="draft length γ", style=style)
        self.cost = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="draft cost c", style=style)
        self.measure_button = w.Button(description="use measured", icon="tachometer",
                                       tooltip="decode a few prompts both ways and fill α, γ, c from the run")
        self.result = w.HTML()
        self.measured: SpeedupRecord | None = None
        self.figure = go.FigureWidget()
        super().__init__([w.HBox([self.alpha, self.gamma, self.cost]), self.measure_button, self.result, self.figure, self.errors])
        for slider in (self.alpha, self.gamma, self.cost):
            slider.observe(self.errors.guard(lambda _: self.update()), "value")
        self.measure_button.on_click(self.errors.guard(lambda _: self.use_measured()))
        self.update()

    @property
    def prediction(self) -> tuple[float, float]:
        """(expected tokens per full pass, expected speedup) at the sliders' values."""
        a, g, c = self.alpha.value, self.gamma.value, self.cost.value
        return expected_tokens_per_pass(a, g), expected_speedup(a, g, c)

    def use_measured(self) -> SpeedupRecord:
        """Decode the prompts both ways (`measure_speedup`: drafting every step; takes a while), set the sliders to
        the measured α, γ and c (within their ranges) and redraw; returns the record (also `measured`)."""
        self.measure_button.disabled = True
        self.result.value = "measuring: autoregressive and SWIFT decoding, interleaved (progress below) ..."
        try:
            self.measured = measure_speedup(self.model, self.prompt_ids, self.skip_set,
                                            max_new_tokens=self.max_new_tokens, repeats=self.repeats)
        finally:
            self.measure_button.disabled = False
        m = self.measured
        self.alpha.value = min(round(m.alpha, 2), self.alpha.max)
        self.cost.value = min(round(m.cost, 2), self.cost.max)
        self.gamma.value = max(1, min(round(m.gamma), self.gamma.max))
        self.update()
        return m

    def update(self) -> None:
        """Recompute the formula's line (and the measured comparison) and redraw the figure from the sliders."""
        tokens, speedup = self.prediction
        a, g, c = self.alpha.value, self.gamma.value, self.cost.value
        text = (f"expected tokens per full pass (1 − α<sup>γ+1</sup>)/(1 − α) = <b>{tokens:.2f}</b>; each pass costs "
                f"γ·c + 1 = {g * c + 1:.2f} full passes; expected speedup <b>{speedup:.2f}×</b>")
        m = self.measured
        if m is not None:
            text += (f"<br>measured on {m.runs} runs (median α = {m.alpha:.2f}, γ = {m.gamma:.1f} drafts per pass, "
                     f"c = {m.cost:.2f}): speedup <b>{m.median:.2f}×</b> (min {min(m.speedups):.2f}, "
                     f"max {max(m.speedups):.2f}); the formula predicts "
                     f"{expected_speedup(m.alpha, m.gamma, m.cost):.2f}× for those. It counts a verifying pass as "
                     f"one plain pass; it measured v = {m.verify_cost:.2f} (the whole draft tree goes through the model "
                     f"at once), and with that it predicts "
                     f"{expected_speedup(m.alpha, m.gamma, m.cost, m.verify_cost):.2f}×. What is left is time "
                     f"outside the passes, and α and γ varying from pass to pass.")
        self.result.value = text
        fresh = speedup_figure(a, g, c, m)
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(fresh.data)
            self.figure.layout = fresh.layout
