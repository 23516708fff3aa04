"""The skip-set editor: toggle sub-layers by hand, see matchness live, decode on demand."""

from __future__ import annotations

import ipywidgets as w
import plotly.graph_objects as go

from ..models.adapters import num_layers
from ..api import encode_prompt
from ..analysis.bench import compare
from ..engine.decoding import reference_continuation
from ..analysis.figures import skip_sets_heatmap
from ..engine.matchness import matchness_scores
from ..analysis.probes import skip_set_for
from ..engine.skipset import SkipSet
from ..tasks import get_examples
from .common import ErrorLine

PRESETS = ("uniform", "early exit", "none", "cached")


class SkipSetEditor(w.VBox):
    """Toggle a skip set sub-layer by sub-layer, or from a preset, and see its matchness on `prompts` of `task`
    at once; "decode" measures AR against SWIFT with it. The "cached" preset takes the set `store` (None: the
    default store) holds for `model_name` and `task`."""
    def __init__(self, model, tokenizer, task: str = "story", prompts: int = 2, window: int = 24,
                 store=None, model_name: str = "lab"):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
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
                # the first and last layers can be toggled (early exit drops the last one), with a warning
                b = w.ToggleButton(description=str(i), layout=w.Layout(width="42px", padding="0"),
                                   tooltip=f"{kind} {i}" + (" (SWIFT never skips it)" if i in (0, self.L - 1)
                                                            else ""))
                b.observe(self.errors.guard(lambda change, b=b: self._toggled(b)), "value")
                self.toggles[(kind, i)] = b
                buttons.append(b)
            rows.append(w.HBox([w.Label("attn" if kind == "attention" else "MLP", layout=w.Layout(width="40px"))]
                               + buttons))
        self.cached = self._cached_set()
        # say up front when nothing is cached, rather than silently applying "no skipping"
        self.preset = w.Dropdown(options=[(p if p != "cached" or self.cached else "cached (none stored)", p)
                                          for p in PRESETS], value="uniform", description="preset")
        self.notice = w.HTML()
        self.ratio = w.FloatSlider(value=0.45, min=0.0, max=1.0, step=0.05, description="ratio")
        self.apply_button = w.Button(description="apply preset")
        self.matchness = w.HTML()
        self.decode_button = w.Button(description="decode: AR vs SWIFT", icon="play", layout=w.Layout(width="auto"))
        self.decode_progress = w.Output()
        self.decode_out = w.HTML()
        self.figure = go.FigureWidget(skip_sets_heatmap({"skipped": SkipSet.none(self.L)}, by_kind=True))
        self.figure.update_layout(height=180, margin=dict(t=40, b=30), title="skipped sub-layers",
                                  xaxis_title="layer")
        super().__init__([w.HBox([self.preset, self.ratio, self.apply_button]), self.notice, *rows, self.matchness,
                          self.figure, w.HBox([self.decode_button]), self.decode_progress, self.decode_out, self.errors])
        self.add_class("swiftlab-skipset-editor")  # a stable hook for the browser test and custom CSS
        self.matchness.add_class("swiftlab-matchness")
        self.apply_button.on_click(self.errors.guard(lambda _: self.apply_preset()))
        self.decode_button.on_click(self.errors.guard(lambda _: self.decode()))
        self._quiet = False
        self.apply_preset()

    @property
    def skip_set(self) -> SkipSet:
        pick = lambda kind: tuple(i for i in range(self.L) if self.toggles[(kind, i)].value)
        attention, mlp = pick("attention"), pick("mlp")
        edges = bool({0, self.L - 1} & set(attention + mlp))
        return SkipSet(attention, mlp, self.L, allow_edges=edges)

    def _cached_set(self) -> SkipSet | None:
        from ..support.errors import SwiftlabError
        from ..search.store import SkipSetStore

        try:
            return (self.store or SkipSetStore()).get(self.model_name, self.task, self.L)
        except SwiftlabError:  # an unreadable store offers nothing either; the preset's label says so
            return None

    def set_skip_set(self, s: SkipSet) -> None:
        """Set the toggles to `s`, then score and redraw once (not once per toggle)."""
        self._quiet = True  # one update at the end, not one per toggle
        for (kind, i), b in self.toggles.items():
            b.value = i in getattr(s, kind)
        self._quiet = False
        self._changed()

    def apply_preset(self) -> None:
        """Set the toggles from the preset menu: uniform or early exit at the ratio slider's value, the cached set
        (where none is stored, a notice and the toggles left as they are), or no skipping."""
        name = self.preset.value
        self.notice.value = ""
        if name in ("uniform", "early exit"):  # the same sets the explorer and the sweep use
            s = skip_set_for(name.replace(" ", "_"), self.model, self.ratio.value, self.prompt_ids)
        elif name == "cached":
            self.cached = self._cached_set()
            if self.cached is None:
                self.notice.value = (f"<b>Nothing cached</b> for model {self.model_name!r}, task {self.task!r}: "
                                     f"run <code>python -m swiftlab optimize --model {self.model_name} --task "
                                     f"{self.task}</code> first. The skip set was left as it was.")
                return
            s = self.cached
        else:
            s = SkipSet.none(self.L)
        self.set_skip_set(s)

    def score(self) -> float:
        """Matchness of the toggled skip set over the last `window` positions of each prompt's reference
        continuation, averaged over the prompts (one batched pass each)."""
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
        edges = " · skips the first or last layer, which SWIFT never does (early exit does)" if s.allow_edges else ""
        self.matchness.value = (f"ratio <b>{s.ratio:.2f}</b> ({s.num_skipped} of {s.search_size} sub-layers); "
                                f"matchness on {self.task}: <b>{value:.3f}</b>{edges}")
        self.last_matchness = value
        with self.figure.batch_update():
            self.figure.data[0].z = skip_sets_heatmap({"skipped": s}, by_kind=True).data[0].z

    def decode(self, max_new_tokens: int = 48, repeats: int = 2):
        """AR and SWIFT on every prompt, `repeats` times, after a warm-up: medians with their min–max."""
        self.decode_button.disabled = True
        self.decode_progress.clear_output()
        try:
            with self.decode_progress:
                c = compare(self.model, self.prompt_ids, self.skip_set, max_new_tokens=max_new_tokens,
                            repeats=repeats, warmup=True, progress=True)
        finally:
            self.decode_button.disabled = False
        s = c.summary()
        median, low, high = c.speedup_spread()
        s.update(speedup=median, speedup_min=low, speedup_max=high)
        self.decode_out.value = (
            f"speedup <b>{median:.2f}×</b> (min–max {low:.2f}–{high:.2f}× over {len(c.ar)} runs: "
            f"{len(self.prompt_ids)} prompts × {repeats} repeats); AR {s['ar_tokens_per_s']:.1f} tok/s, SWIFT "
            f"{s['swift_tokens_per_s']:.1f} tok/s (medians), {s['mean_accepted_tokens']:.2f} tokens per pass, "
            f"acceptance {s['acceptance_rate']:.0%}, identical output: {s['identical']}")
        return s
