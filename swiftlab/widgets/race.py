"""A race: plain decoding and SWIFT writing the same prompt side by side, replayed at their measured pace."""

from __future__ import annotations

import html

import ipywidgets as w

from ..api import decode_continuation, encode_prompt
from ..analysis.inside import RaceRecord, race
from ..engine.skipset import SkipSet
from .common import ErrorLine, widget_skip_set

NAMES = {"ar": "plain decoding", "swift": "SWIFT"}
TICK_MS = 50  # the replay's frame interval


class Race(w.VBox):
    """"start" decodes the prompt both ways, timing every pass; the clock then replays both runs,
    slowed down by `slowdown` (small models write faster than eyes read), each token appearing when its
    pass ended."""

    def __init__(self, model, tokenizer, prompt: str = "Story: Once upon a time, there was a little girl named Anna.",
                 skip_set: SkipSet | None = None, max_new_tokens: int = 64, slowdown: int = 10):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.model, self.tokenizer = model, tokenizer
        self.skip_set = widget_skip_set(model, skip_set)
        self.prompt_ids, self.max_new_tokens = encode_prompt(tokenizer, prompt), max_new_tokens
        self.start_button = w.Button(description="start", icon="flag-checkered")
        self.slowdown = w.Dropdown(options=[("real time", 1), ("10× slower", 10), ("50× slower", 50)],
                                   value=slowdown, description="replay", layout=w.Layout(width="200px"))
        self.play = w.Play(interval=TICK_MS, step=TICK_MS, min=0, max=0, value=0)
        self.clock = w.IntSlider(min=0, max=0, description="replay ms", readout=True, layout=w.Layout(width="60%"))
        w.jslink((self.play, "value"), (self.clock, "value"))
        self.panes = {m: w.HTML(layout=w.Layout(width="48%", border="1px solid #ddd", padding="4px")) for m in NAMES}
        self.record: RaceRecord | None = None
        super().__init__([w.HBox([self.start_button, self.slowdown, self.play, self.clock]),
                          w.HBox(list(self.panes.values())), self.errors])
        self.start_button.on_click(self.errors.guard(lambda _: self.start()))
        self.clock.observe(self.errors.guard(lambda _: self.show()), "value")
        self.slowdown.observe(self.errors.guard(lambda _: self._set_length()), "value")
        self.show()

    def start(self) -> RaceRecord:
        """Decode the prompt both ways (blocking; `analysis.inside.race`), rewind the replay clock and return the
        record (also `record`)."""
        self.start_button.disabled = True
        try:
            self.record = race(self.model, self.prompt_ids, self.skip_set, max_new_tokens=self.max_new_tokens)
        finally:
            self.start_button.disabled = False
        self._set_length()
        self.play.value = self.clock.value = 0
        self.show()
        return self.record

    def _set_length(self) -> None:
        if self.record is not None:
            end = max(ends[-1] for ends in self.record.ends_s.values())
            self.play.max = self.clock.max = int(end * 1000 * self.slowdown.value) + TICK_MS

    def seconds(self) -> float:
        """Real decoding seconds at the replay clock."""
        return self.clock.value / 1000 / self.slowdown.value

    def show(self) -> None:
        """Draw both panes at the replay clock: the text written, the passes done, and the finish time once reached."""
        for method, pane in self.panes.items():
            if self.record is None:
                pane.value = f"<b>{NAMES[method]}</b><br><i>press start</i>"
                continue
            tokens, passes = self.record.at(method, self.seconds())
            total = len(self.record.ends_s[method])
            finished = passes == total
            text = html.escape(decode_continuation(self.tokenizer, self.prompt_ids, tokens))
            done_at = self.record.ends_s[method][-1]
            pane.value = (f"<b>{NAMES[method]}</b> · clock {min(self.seconds(), done_at) * 1000:.0f} ms · "
                          f"{passes} full-model passes · {len(tokens)} tokens"
                          + (f" · <b>finished in {done_at * 1000:.0f} ms</b>" if finished else "")
                          + f"<div style='font-family:monospace;white-space:pre-wrap;min-height:6em'>{text}</div>")
