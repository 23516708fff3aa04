"""The skip-set editor: toggle sub-layers by hand, see matchness live, decode on demand."""

from __future__ import annotations

import ipywidgets as w
import plotly.graph_objects as go

from ..adapters import num_layers
from ..api import encode_prompt
from ..bench import compare
from ..matchness import matchness_scores, reference_continuation
from ..skipset import SkipSet
from ..tasks import get_examples

PRESETS = ("uniform", "early exit", "none", "cached")


class SkipSetEditor(w.VBox):
    def __init__(self, model, tokenizer, task: str = "story", prompts: int = 2, window: int = 24,
                 store=None, model_name: str = "lab"):
        self.model, self.tokenizer, self.task, self.window = model, tokenizer, task, window
        self.L = num_layers(model)
        self.store, self.model_name = store, model_name
        ids = [encode_prompt(tokenizer, ex.prompt) for ex in get_examples(task, prompts)]
        self.prompt_ids = ids
        # the full model's own continuations, computed once: every toggle is then one batched pass
        self.references = [reference_continuation(model, p, window + 1) for p in ids]
        self.toggles = {}
        rows = []
        for kind in ("attention", "mlp"):
            buttons = []
            for i in range(self.L):
                b = w.ToggleButton(description=str(i), layout=w.Layout(width="42px", padding="0"),
                                   tooltip=f"{kind} {i}", disabled=i in (0, self.L - 1))
                b.observe(lambda change, b=b: self._toggled(b), "value")
                self.toggles[(kind, i)] = b
                buttons.append(b)
            rows.append(w.HBox([w.Label("attn" if kind == "attention" else "MLP", layout=w.Layout(width="40px"))]
                               + buttons))
        self.preset = w.Dropdown(options=PRESETS, value="uniform", description="preset")
        self.ratio = w.FloatSlider(value=0.45, min=0.0, max=1.0, step=0.05, description="ratio")
        self.apply_button = w.Button(description="apply preset")
        self.matchness = w.HTML()
        self.decode_button = w.Button(description="decode: AR vs SWIFT", icon="play", layout=w.Layout(width="auto"))
        self.decode_out = w.HTML()
        self.figure = go.FigureWidget(go.Heatmap(z=[[0] * self.L] * 2, y=["attention", "MLP"],
                                                 colorscale=[[0, "#f7f7f7"], [1, "#2c7fb8"]], showscale=False,
                                                 xgap=1, ygap=1))
        # attention on top, as in the grid of buttons above
        self.figure.update_layout(height=180, margin=dict(t=30, b=20), title="skipped sub-layers",
                                  yaxis_autorange="reversed")
        super().__init__([w.HBox([self.preset, self.ratio, self.apply_button]), *rows, self.matchness,
                          self.figure, w.HBox([self.decode_button]), self.decode_out])
        self.add_class("swiftlab-skipset-editor")  # a stable hook for the browser test and custom CSS
        self.matchness.add_class("swiftlab-matchness")
        self.apply_button.on_click(lambda _: self.apply_preset())
        self.decode_button.on_click(lambda _: self.decode())
        self._quiet = False
        self.apply_preset()

    @property
    def skip_set(self) -> SkipSet:
        pick = lambda kind: tuple(i for i in range(self.L) if self.toggles[(kind, i)].value)
        return SkipSet(pick("attention"), pick("mlp"), self.L)

    def set_skip_set(self, s: SkipSet) -> None:
        self._quiet = True  # one update at the end, not one per toggle
        for (kind, i), b in self.toggles.items():
            b.value = i in getattr(s, kind)
        self._quiet = False
        self._changed()

    def apply_preset(self) -> None:
        name = self.preset.value
        if name == "uniform":
            s = SkipSet.uniform(self.L, self.ratio.value)
        elif name == "early exit":  # the last layers, except the very last, which the editor keeps
            n = round(self.ratio.value * (self.L - 2))
            s = SkipSet(tuple(range(self.L - 1 - n, self.L - 1)), tuple(range(self.L - 1 - n, self.L - 1)), self.L)
        elif name == "cached":
            from ..store import SkipSetStore

            s = (self.store or SkipSetStore()).get(self.model_name, self.task, self.L) or SkipSet.none(self.L)
        else:
            s = SkipSet.none(self.L)
        self.set_skip_set(s)

    def score(self) -> float:
        s = self.skip_set
        return sum(matchness_scores(self.model, cache, tokens, self.window, [s])[0]
                   for tokens, cache in self.references) / len(self.references)

    def _toggled(self, button) -> None:
        button.button_style = "info" if button.value else ""  # a skipped sub-layer stands out
        self._changed()

    def _changed(self) -> None:
        if self._quiet:
            return
        s = self.skip_set
        value = self.score()
        self.matchness.value = (f"ratio <b>{s.ratio:.2f}</b> ({s.num_skipped} of {s.search_size} sub-layers); "
                                f"matchness on {self.task}: <b>{value:.3f}</b>")
        self.last_matchness = value
        with self.figure.batch_update():
            self.figure.data[0].z = [[int(i in s.attention) for i in range(self.L)],
                                     [int(i in s.mlp) for i in range(self.L)]]

    def decode(self, max_new_tokens: int = 48):
        self.decode_button.disabled = True
        try:
            c = compare(self.model, self.prompt_ids[:1], self.skip_set, max_new_tokens=max_new_tokens, repeats=1,
                        warmup=False, progress=False)
        finally:
            self.decode_button.disabled = False
        s = c.summary()
        self.decode_out.value = (f"AR {s['ar_tokens_per_s']:.1f} tok/s, SWIFT {s['swift_tokens_per_s']:.1f} tok/s "
                                 f"(<b>{s['speedup']:.2f}×</b>), {s['mean_accepted_tokens']:.2f} tokens per pass, "
                                 f"acceptance {s['acceptance_rate']:.0%}, identical output: {s['identical']}")
        return s
