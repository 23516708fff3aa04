"""The skip-ratio explorer: a slider for r, a strategy, and curves against r with the point marked."""

from __future__ import annotations

import ipywidgets as w
import plotly.graph_objects as go

from ..models.adapters import num_layers
from ..api import encode_prompt
from ..engine.decoding import reference_continuation
from ..analysis.figures import COLOURS, sweep_figure
from ..engine.matchness import matchness_scores
from ..analysis.probes import ratio_sweep, skip_set_for
from ..tasks import get_examples
from .common import ErrorLine

RATIOS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
MEASURED_RATIOS = (0.2, 0.4, 0.6)  # decoding every set at every ratio would take minutes on a CPU
CHEAP = ("uniform", "random", "early_exit")  # no search needed: matchness for all of them in one pass


class SkipRatioExplorer(w.VBox):
    """Matchness against the skip ratio r for the uniform, random and early-exit sets on `prompts` of `task`,
    the slider's point marked; "measure" decodes them at a few ratios (`measure`)."""
    def __init__(self, model, tokenizer, task: str = "story", prompts: int = 2, window: int = 24):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.model, self.tokenizer, self.task, self.window = model, tokenizer, task, window
        self.prompt_ids = [encode_prompt(tokenizer, ex.prompt) for ex in get_examples(task, prompts)]
        self.curves = self._matchness_curves()
        self.ratio = w.FloatSlider(value=0.4, min=0.0, max=0.7, step=0.1, description="ratio r")
        self.strategy = w.ToggleButtons(options=CHEAP, value="uniform", description="strategy")
        self.measure_button = w.Button(description="measure acceptance and speed", icon="tachometer",
                                       layout=w.Layout(width="auto"))  # the whole label, not "measure acce…"
        self.info = w.HTML()
        self.figure = go.FigureWidget()
        for name in CHEAP:
            self.figure.add_scatter(x=list(RATIOS), y=self.curves[name], mode="lines+markers", name=name,
                                    line=dict(color=COLOURS[name]))
        self.figure.add_scatter(x=[], y=[], mode="markers", name="current", marker=dict(size=16, symbol="circle-open",
                                                                                          color="black"))
        self.figure.update_layout(title=f"matchness vs skip ratio ({task})", xaxis_title="r",
                                  yaxis_title="matchness", height=340)
        self.progress = w.Output()  # the sweep's tqdm bar lands here
        self.sweep_area = w.VBox()
        super().__init__([w.HBox([self.ratio]), self.strategy, self.figure, self.info, self.measure_button,
                          self.progress, self.sweep_area, self.errors])
        self.ratio.observe(self.errors.guard(lambda _: self._update()), "value")
        self.strategy.observe(self.errors.guard(lambda _: self._update()), "value")
        self.measure_button.on_click(self.errors.guard(lambda _: self.measure()))
        self._update()

    def _matchness_curves(self) -> dict[str, list[float]]:
        sets = [skip_set_for(s, self.model, r, self.prompt_ids) for s in CHEAP for r in RATIOS]
        totals = [0.0] * len(sets)
        for ids in self.prompt_ids:
            tokens, cache = reference_continuation(self.model, ids, self.window + 1)
            scores = matchness_scores(self.model, cache, tokens, self.window, sets)  # all sets in one pass
            totals = [a + b / len(self.prompt_ids) for a, b in zip(totals, scores)]
        return {s: totals[i * len(RATIOS):(i + 1) * len(RATIOS)] for i, s in enumerate(CHEAP)}

    def _update(self) -> None:
        i = min(range(len(RATIOS)), key=lambda j: abs(RATIOS[j] - self.ratio.value))
        y = self.curves[self.strategy.value][i]
        with self.figure.batch_update():
            self.figure.data[-1].x, self.figure.data[-1].y = [RATIOS[i]], [y]
        s = skip_set_for(self.strategy.value, self.model, RATIOS[i], self.prompt_ids)
        self.info.value = (f"{self.strategy.value} at r = {RATIOS[i]:.1f}: matchness <b>{y:.3f}</b>; skips "
                           f"attention {list(s.attention)}, MLP {list(s.mlp)} of {num_layers(self.model)} layers")

    def measure(self, max_new_tokens: int = 48, repeats: int = 2, ratios=MEASURED_RATIOS):
        """Decode every strategy's set at a few ratios, autoregressive alongside: acceptance, tokens per pass
        and speedup as medians (min–max) over the prompts × repeats, after a warm-up."""
        self.measure_button.disabled = True
        self.progress.clear_output()
        try:
            with self.progress:
                record = ratio_sweep(self.model, self.prompt_ids, ratios, CHEAP, task=self.task,
                                     max_new_tokens=max_new_tokens, repeats=repeats, progress=True)
        finally:
            self.measure_button.disabled = False
        self.sweep_area.children = [go.FigureWidget(sweep_figure(record, highlight=self.ratio.value))]
        self.last_sweep = record
        return record
