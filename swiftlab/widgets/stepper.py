"""The token stepper: self-speculative decoding one full-model pass at a time, one row per pass.

Every row comes from the engine's own StepEvent: what was drafted, which drafts the full model
accepted or rejected, the tree's runner-up candidates it verified, its bonus token, the kind of the
pass (prompt pass, skip draft, lookup, plain step) and why the engine chose it.
"""

from __future__ import annotations

import html

import ipywidgets as w

from ..api import encode_prompt
from ..engine.decoding import DecodeSession, StepEvent, SwiftParams
from ..engine.skipset import SkipSet
from .common import ErrorLine, widget_skip_set

COLOURS = {"prompt": "#777", "accepted": "#1a7f37", "rejected": "#cf222e", "discarded": "#aaa",
           "bonus": "#0550ae", "sibling": "#8250df"}
MEANING = {"accepted": "drafted, accepted by the full model", "rejected": "drafted, rejected",
           "discarded": "drafted after a rejection: thrown away unchecked", "bonus": "the full model's own token",
           "sibling": "a runner-up candidate the tree also verified"}
KIND_NAMES = {"prefill": "prompt pass", "skip": "skip draft", "lookup": "lookup", "ar": "plain step"}


def pass_cells(event: StepEvent) -> list[tuple[str, int, int]]:
    """(status, token, depth) for every token a pass drafted or emitted, in order: the chain's tokens as
    accepted / rejected / discarded, an accepted sibling (after the chain token it replaced), then the
    bonus token. depth: 0-based place in the draft (the bonus: after the accepted ones)."""
    chain_accepted = sum(1 for i in event.path if i < len(event.drafted))
    cells = []
    for depth, token in enumerate(event.drafted):
        status = "accepted" if depth < chain_accepted else "rejected" if depth == chain_accepted else "discarded"
        cells.append((status, token, depth))
        if depth == chain_accepted and event.accepted > chain_accepted:  # a sibling took the chain's place
            cells.append(("accepted", event.new_tokens[event.accepted - 1], depth))
    if len(event.new_tokens) > event.accepted:  # none where an accepted draft was end-of-text
        cells.append(("bonus", event.new_tokens[-1], event.accepted))
    return cells


class TokenStepper(w.VBox):
    """SWIFT decoding of an editable prompt, one full-model pass a click (a DecodeSession), one table row per
    pass. `fallback`: let the engine take plain steps where drafting is measured slower (off: always draft)."""
    def __init__(self, model, tokenizer, prompt: str = "Story: Once upon a time,", skip_set: SkipSet | None = None,
                 max_new_tokens: int = 64, verify: str = "tree", fallback: bool = False):
        self.errors = ErrorLine()  # a failed click or slider shows here (common.py)
        self.model, self.tokenizer = model, tokenizer
        self.skip_set = widget_skip_set(model, skip_set)
        self.max_new_tokens, self.verify = max_new_tokens, verify
        self.prompt = w.Textarea(value=prompt, layout=w.Layout(width="100%"))
        self.step_button = w.Button(description="draft + verify", icon="step-forward")
        self.run_button = w.Button(description="to the end", icon="fast-forward")
        self.reset_button = w.Button(description="reset", icon="undo")
        # off by default: the stepper is there to show drafting; on, the engine may take plain steps
        # wherever drafting is measured slower than them, and each row says so
        self.fallback = w.Checkbox(value=fallback, description="allow plain-step fallback", indent=False,
                                   layout=w.Layout(width="auto"))
        self.text = w.HTML()
        self.table = w.HTML()
        self.counters = w.HTML()
        legend = " ".join(f"<span style='color:{COLOURS[k]}' title='{v}'>■ {k}: {v}</span> &nbsp;"
                          for k, v in MEANING.items())
        super().__init__([self.prompt, w.HBox([self.step_button, self.run_button, self.reset_button, self.fallback]),
                          w.HTML(f"<small>{legend}</small>"), self.text, self.counters, self.table, self.errors])
        self.step_button.on_click(self.errors.guard(lambda _: self.step()))
        self.run_button.on_click(self.errors.guard(lambda _: self.run_to_end()))
        self.reset_button.on_click(self.errors.guard(lambda _: self.reset()))
        self.fallback.observe(self.errors.guard(lambda _: self.reset()), "value")
        self.reset()

    @property
    def events(self) -> list[StepEvent]:
        return self.session.events

    @property
    def pieces(self) -> list[tuple[str, str]]:
        """(status, text) of the prompt and of every token the passes so far drafted or emitted."""
        out, context = [("prompt", self.prompt.value)], list(self.session.prompt_ids)
        for event in self.events:
            before = list(context)
            for status, token, depth in pass_cells(event):
                emitted = status in ("accepted", "bonus")
                out.append((status, self._piece(token, context if emitted else before + event.drafted[:depth])))
                if emitted:
                    context.append(token)
        return out

    def reset(self) -> None:
        """Start over on the prompt box's current text and the fallback box's value, with no passes yet."""
        self.session = DecodeSession(self.model, encode_prompt(self.tokenizer, self.prompt.value), method="swift",
                                     skip_set=self.skip_set, max_new_tokens=self.max_new_tokens,
                                     swift=SwiftParams(verify=self.verify, fallback=self.fallback.value))
        self._render()

    def step(self) -> StepEvent | None:
        """Run the next pass (the prompt pass first) and redraw; returns its StepEvent, None once the run is done."""
        if self.session.done:
            return None
        event = self.session.step()
        self._render()
        return event

    def run_to_end(self) -> None:
        """Run the remaining passes (to `max_new_tokens` or end of text), then redraw once."""
        while not self.session.done:
            self.session.step()
        self._render()

    def _piece(self, token: int, before: list[int]) -> str:
        """The text `token` adds after `before` (decoding it alone loses SentencePiece's leading space)."""
        context = before[-8:]
        with_token, without = self.tokenizer.decode(context + [token]), self.tokenizer.decode(context)
        piece = with_token[len(without):] if with_token.startswith(without) else self.tokenizer.decode([token])
        return piece.replace("\n", "↵")

    def _span(self, status: str, token: int, before: list[int]) -> str:
        style = f"color:{COLOURS[status]}" + (";text-decoration:line-through" if status in ("rejected", "discarded")
                                             else "")
        text = html.escape(self._piece(token, before))
        return f"<span style='{style}' title='{status}'>{text}</span>"

    def _row(self, event: StepEvent, before: list[int]) -> str:
        spans, kept = [], list(before)
        for status, token, depth in pass_cells(event):
            # a rejected or discarded draft follows the drafter's own chain; emitted tokens follow the output
            context = kept if status in ("accepted", "bonus") else before + event.drafted[:depth]
            spans.append(f"<span style='border:1px solid #ddd;padding:0 2px'>{self._span(status, token, context)}</span>")
            if status == "accepted":
                kept.append(token)
        nodes = event.drafted + [t for sib in event.siblings for t in sib]
        taken = {nodes[i] for i in event.path if i >= len(event.drafted)}
        chain_before = lambda depth: before + event.drafted[:depth]
        siblings = " | ".join(
            f"d{depth + 1}: " + " ".join(self._span("accepted" if t in taken else "sibling", t, chain_before(depth))
                                         for t in sib)
            for depth, sib in enumerate(event.siblings) if sib)
        return (f"<tr><td>{event.index}</td><td><b>{KIND_NAMES.get(event.kind, event.kind)}</b></td>"
                f"<td>{len(event.drafted)}</td><td>{event.accepted}</td><td>{len(event.new_tokens)}</td>"
                f"<td style='font-family:monospace'>{' '.join(spans)}</td>"
                f"<td style='font-family:monospace'>{siblings}</td>"
                f"<td>{event.seconds * 1000:.1f}</td><td><small>{html.escape(event.reason)}</small></td></tr>")

    def _render(self) -> None:
        spans = [f"<span style='color:{COLOURS['prompt']}'>{html.escape(self.prompt.value)}</span>"]
        context, rows = list(self.session.prompt_ids), []
        for event in self.events:
            rows.append(self._row(event, context))
            for status, token, _ in pass_cells(event):
                if status in ("accepted", "bonus"):
                    spans.append(self._span(status, token, context))
                    context.append(token)
        self.text.value = "<div style='font-family:monospace;white-space:pre-wrap'>" + "".join(spans) + "</div>"
        head = "".join(f"<th>{h}</th>" for h in ("pass", "kind", "drafted", "accepted", "emitted", "tokens",
                                                  "verified runner-ups", "ms", "why"))
        self.table.value = (f"<div style='max-height:420px;overflow:auto'><table style='font-size:90%'>"
                            f"<thead><tr>{head}</tr></thead><tbody>{''.join(reversed(rows))}</tbody></table></div>")
        run = self.session.result()
        steps, tokens = run.steps, run.new_tokens
        drafted, accepted = sum(run.drafted_per_step), sum(run.accepted_per_step)
        kinds = ", ".join(f"{run.step_kinds.count(k)} {KIND_NAMES[k]}" for k in KIND_NAMES if k in run.step_kinds)
        self.counters.value = (
            f"<b>{steps}</b> full-model passes ({kinds}) for <b>{tokens}</b> tokens "
            f"({tokens / steps if steps else 0:.2f} per pass); acceptance {accepted}/{drafted} "
            f"({accepted / drafted if drafted else 0:.0%}); autoregressive decoding would have needed "
            f"<b>{tokens}</b> passes." + (" <i>done</i>" if self.session.done else ""))
        self.step_button.disabled = self.run_button.disabled = self.session.done
