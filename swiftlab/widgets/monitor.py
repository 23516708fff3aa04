"""The optimization monitor: a SWIFT stream run step by step or continuously, watched live."""

from __future__ import annotations

import html
import threading

import ipywidgets as w
import plotly.graph_objects as go

from ..api import encode_prompt
from ..analysis.figures import skip_sets_heatmap, stream_figure, trajectory_figure
from ..search.skipsearch import SearchConfig
from ..search.stream import REFERENCE_SETTINGS, StreamSettings, SwiftStream
from ..tasks import get_examples
from .common import ErrorLine


class OptimizationMonitor(w.VBox):
    """A SwiftStream over `prompts` of `task`, served one prompt a click or in the background, its matchness
    trajectory, best set and per-prompt speed redrawn as it goes. The default `settings` take a search step
    after every verification (the reference's way), so the search is there to watch."""
    def __init__(self, model, tokenizer, task: str = "story", prompts: int = 10, max_new_tokens: int = 96,
                 config: SearchConfig = SearchConfig(), settings: StreamSettings = REFERENCE_SETTINGS):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens
        self.stream = SwiftStream(model, config, settings=settings)  # a step after every verification: watchable
        self.prompts = [encode_prompt(tokenizer, ex.prompt) for ex in get_examples(task, prompts, seed=1)]
        self.next_prompt = 0
        self.start_button = w.Button(description="start", icon="play")
        self.pause_button = w.Button(description="pause", icon="pause", disabled=True)
        self.step_button = w.Button(description="one prompt", icon="step-forward")
        self.status = w.HTML()
        # the live figures are the figure builders' own, updated in place
        self.figure = go.FigureWidget(trajectory_figure(self.stream.search.trajectory))
        self.figure.update_layout(title="matchness per proposal (random, Bayesian every β-th)", height=340)
        self.best_figure = go.FigureWidget(skip_sets_heatmap({"best": self.stream.search.best}, by_kind=True))
        self.best_figure.update_layout(height=180, margin=dict(t=40, b=30), title="current best skip set",
                                       xaxis_title="layer")
        self.speed_figure = go.FigureWidget(stream_figure([]))
        self.speed_figure.update_layout(height=460)
        super().__init__([w.HBox([self.start_button, self.pause_button, self.step_button]), self.status,
                          self.figure, self.best_figure, self.speed_figure, self.errors])
        self.add_class("swiftlab-optimization-monitor")  # a stable hook for the browser test and custom CSS
        self.status.add_class("swiftlab-status")
        self._stop = threading.Event()
        self._thread = None
        self.error: Exception | None = None  # what stopped a background run; shown in the status line too
        self.start_button.on_click(self.errors.guard(lambda _: self.start()))
        self.pause_button.on_click(self.errors.guard(lambda _: self.pause()))
        self.step_button.on_click(self.errors.guard(lambda _: self.step()))
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
        self.error = None
        self._set_busy(True)

        def loop():
            # an error in a background thread reaches no cell's output: keep it and show it in the status line
            try:
                while not self._stop.is_set() and self.step():
                    pass
            except Exception as error:  # noqa: BLE001 (any failure must reach the person watching)
                self.error = error
                self.status.value += (f'<br><span class="swiftlab-error">stopped by an error: '
                                      f'{html.escape(f"{type(error).__name__}: {error}")}</span>')
            finally:
                self._set_busy(False)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Ask the background run to stop after the prompt in progress; returns at once (`wait` waits for it)."""
        self._stop.set()  # takes effect after the prompt in progress

    def wait(self, timeout: float | None = None) -> None:
        """Block until the background run has stopped, or for at most `timeout` seconds; at once where none started."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _set_busy(self, busy: bool) -> None:
        self.start_button.disabled = self.step_button.disabled = busy
        self.pause_button.disabled = not busy

    def _refresh(self) -> None:
        search = self.stream.search
        _copy_traces(trajectory_figure(search.trajectory), self.figure)
        _copy_traces(skip_sets_heatmap({"best": search.best}, by_kind=True), self.best_figure)
        _copy_traces(stream_figure(self.stream.records), self.speed_figure, layout=("shapes", "annotations"))
        last = self.stream.records[-1] if self.stream.records else None
        self.status.value = (
            f"prompt {self.next_prompt}/{len(self.prompts)} · phase <b>{self.stream.phase}</b> · "
            f"{search.iteration} proposals · best matchness "
            f"{search.best_score if search.best_score is not None else float('nan'):.3f}"
            + (f" · stopped: <b>{search.stopped_because}</b>" if search.stopped_because else "")
            + (f" · last prompt {last.tokens_per_s:.1f} tok/s, {last.mean_accepted_tokens:.2f} tokens/pass"
               + (f", {last.lookup} lookup" if last.lookup else "") if last else ""))


def _copy_traces(source: go.Figure, target: go.FigureWidget, layout: tuple[str, ...] = ()) -> None:
    """Move a freshly built figure's data (and some layout parts) into a live widget, in one update."""
    with target.batch_update():
        for new, old in zip(source.data, target.data):
            for key in ("x", "y", "z"):
                if key in new:
                    old[key] = new[key]
        for key in layout:
            target.layout[key] = source.layout[key]
