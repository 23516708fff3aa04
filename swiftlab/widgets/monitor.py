"""The optimization monitor: a SWIFT stream run step by step or continuously, watched live."""

from __future__ import annotations

import threading

import ipywidgets as w
import plotly.graph_objects as go

from ..api import encode_prompt
from ..search import SearchConfig
from ..stream import SwiftStream
from ..tasks import get_examples


class OptimizationMonitor(w.VBox):
    def __init__(self, model, tokenizer, task: str = "story", prompts: int = 10, max_new_tokens: int = 96,
                 config: SearchConfig = SearchConfig()):
        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens
        self.stream = SwiftStream(model, config)
        self.prompts = [encode_prompt(tokenizer, ex.prompt) for ex in get_examples(task, prompts, seed=1)]
        self.next_prompt = 0
        self.start_button = w.Button(description="start", icon="play")
        self.pause_button = w.Button(description="pause", icon="pause", disabled=True)
        self.step_button = w.Button(description="one prompt", icon="step-forward")
        self.status = w.HTML()
        L = self.stream.search.num_layers
        self.figure = go.FigureWidget()
        for name, symbol, colour in (("random", "circle", "#7f7f7f"), ("bayes", "star", "#ff7f0e")):
            self.figure.add_scatter(x=[], y=[], mode="markers", name=name, marker=dict(symbol=symbol, color=colour))
        self.figure.add_scatter(x=[], y=[], mode="lines", name="best", line=dict(color="#2ca02c", shape="hv"))
        self.figure.update_layout(title="matchness per proposal", xaxis_title="iteration", height=320)
        self.best_figure = go.FigureWidget(go.Heatmap(z=[[0] * L] * 2, y=["attention", "MLP"], showscale=False,
                                                      colorscale=[[0, "#f7f7f7"], [1, "#2c7fb8"]], xgap=1, ygap=1))
        self.best_figure.update_layout(height=170, margin=dict(t=30, b=20), title="current best skip set",
                                       yaxis_autorange="reversed")  # attention on top, as everywhere
        super().__init__([w.HBox([self.start_button, self.pause_button, self.step_button]), self.status,
                          self.figure, self.best_figure])
        self.add_class("swiftlab-optimization-monitor")  # a stable hook for the browser test and custom CSS
        self.status.add_class("swiftlab-status")
        self._stop = threading.Event()
        self._thread = None
        self.start_button.on_click(lambda _: self.start())
        self.pause_button.on_click(lambda _: self.pause())
        self.step_button.on_click(lambda _: self.step())
        self._refresh()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def step(self) -> bool:
        """Serve the next prompt (optimizing while the search runs); False when none are left."""
        if self.next_prompt >= len(self.prompts):
            return False
        self.stream.decode(self.prompts[self.next_prompt], max_new_tokens=self.max_new_tokens)
        self.next_prompt += 1
        self._refresh()
        return True

    def start(self) -> None:
        """Serve prompts in the background until paused or out of prompts; the notebook stays free."""
        if self.busy:
            return
        self._stop.clear()
        self._set_busy(True)

        def loop():
            try:
                while not self._stop.is_set() and self.step():
                    pass
            finally:
                self._set_busy(False)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self._stop.set()  # takes effect after the prompt in progress

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _set_busy(self, busy: bool) -> None:
        self.start_button.disabled = self.step_button.disabled = busy
        self.pause_button.disabled = not busy

    def _refresh(self) -> None:
        search = self.stream.search
        steps = search.trajectory.steps
        with self.figure.batch_update():
            for trace, kind in zip(self.figure.data[:2], ("random", "bayes")):
                pts = [s for s in steps if s.kind == kind]
                trace.x, trace.y = [s.iteration for s in pts], [s.matchness for s in pts]
            self.figure.data[2].x = [s.iteration for s in steps]
            self.figure.data[2].y = [s.best_matchness for s in steps]
        best = search.best
        with self.best_figure.batch_update():
            self.best_figure.data[0].z = [[int(i in best.attention) for i in range(best.num_layers)],
                                          [int(i in best.mlp) for i in range(best.num_layers)]]
        last = self.stream.records[-1] if self.stream.records else None
        self.status.value = (
            f"prompt {self.next_prompt}/{len(self.prompts)} · phase <b>{self.stream.phase}</b> · "
            f"{search.iteration} proposals · best matchness "
            f"{search.best_score if search.best_score is not None else float('nan'):.3f}"
            + (f" · stopped: <b>{search.stopped_because}</b>" if search.stopped_because else "")
            + (f" · last prompt {last.tokens_per_s:.1f} tok/s, {last.mean_accepted_tokens:.2f} tokens/pass"
               if last else ""))
