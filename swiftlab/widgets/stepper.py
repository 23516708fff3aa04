"""The token stepper: self-speculative decoding one draft/verify cycle at a time."""

from __future__ import annotations

import html

import ipywidgets as w

from ..adapters import num_layers
from ..api import encode_prompt
from ..decoding import DecodeSession, SwiftParams
from ..skipset import SkipSet

COLOURS = {"prompt": "#777", "accepted": "#1a7f37", "rejected": "#cf222e", "bonus": "#0550ae"}


class TokenStepper(w.VBox):
    def __init__(self, model, tokenizer, prompt: str = "Story: Once upon a time,", skip_set: SkipSet | None = None,
                 max_new_tokens: int = 64, verify: str = "chain"):
        self.model, self.tokenizer = model, tokenizer
        self.skip_set = skip_set or SkipSet.uniform(num_layers(model), 0.45)
        self.max_new_tokens, self.verify = max_new_tokens, verify
        self.prompt = w.Textarea(value=prompt, layout=w.Layout(width="100%"))
        self.step_button = w.Button(description="draft + verify", icon="step-forward")
        self.run_button = w.Button(description="to the end", icon="fast-forward")
        self.reset_button = w.Button(description="reset", icon="undo")
        self.text = w.HTML()
        self.counters = w.HTML()
        legend = " ".join(f"<span style='color:{c}'>■ {k}</span>" for k, c in COLOURS.items())
        super().__init__([self.prompt, w.HBox([self.step_button, self.run_button, self.reset_button]),
                          w.HTML(legend), self.text, self.counters])
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run_to_end())
        self.reset_button.on_click(lambda _: self.reset())
        self.reset()

    def reset(self) -> None:
        self.session = DecodeSession(self.model, encode_prompt(self.tokenizer, self.prompt.value), method="swift",
                                     skip_set=self.skip_set, max_new_tokens=self.max_new_tokens,
                                     swift=SwiftParams(verify=self.verify))
        self.pieces = [("prompt", self.prompt.value)]
        self._render()

    def step(self):
        if self.session.done:
            return None
        event = self.session.step()
        piece = lambda ids: self.tokenizer.decode(ids)
        self.pieces += [("accepted", piece([t])) for t in event.new_tokens[:event.accepted]]
        if event.index and event.accepted < len(event.drafted):
            self.pieces.append(("rejected", piece([event.drafted[event.accepted]])))
        self.pieces.append(("bonus", piece([event.new_tokens[-1]])))
        self._render()
        return event

    def run_to_end(self) -> None:
        while not self.session.done:
            self.step()

    def _render(self) -> None:
        spans = []
        for kind, text in self.pieces:
            style = f"color:{COLOURS[kind]}" + (";text-decoration:line-through" if kind == "rejected" else "")
            spans.append(f"<span style='{style}' title='{kind}'>{html.escape(text)}</span>")
        self.text.value = "<div style='font-family:monospace;white-space:pre-wrap'>" + "".join(spans) + "</div>"
        run = self.session.run
        steps, tokens = len(run.drafted), len(run.tokens)
        drafted, accepted = sum(run.drafted), sum(run.accepted)
        self.counters.value = (
            f"<b>{steps}</b> full-model passes for <b>{tokens}</b> tokens "
            f"({tokens / steps if steps else 0:.2f} per pass); acceptance {accepted}/{drafted} "
            f"({accepted / drafted if drafted else 0:.0%}); autoregressive decoding would have needed "
            f"<b>{tokens}</b> passes." + (" <i>done</i>" if self.session.done else ""))
        self.step_button.disabled = self.run_button.disabled = self.session.done
