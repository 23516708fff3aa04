"""What a SWIFT run decodes with when no skip set is given: what the skip-set store knows about the model,
else a start that risks nothing (plain steps, lookup drafts where the text repeats, skip drafts only once a
budgeted search finds a set expected to pay at the pass costs measured here), and storing what the run learned.
swiftlab.generate, `swiftlab generate`, `swiftlab demo` and hf_generate all take it from here."""

from __future__ import annotations

import math

from ..engine.decoding import SwiftParams, decode
from ..support.errors import SwiftlabError
from ..engine.lookup import LOOKUP_TOKENS
from ..engine.records import DecodeResult
from ..engine.sampling import SamplingParams
from ..engine.skipset import SkipSet

GENERATE_TASK = "generate"  # the store's task name for what runs without a skip set learn
PLAN_SEARCH_SHARE = 0.10  # the most share of a run's wall time its search may spend scoring
PLAN_EARLY_AFTER = 2  # sets scored before the early verdict (a stream's default: 3)


class StoreWarning(UserWarning):
    """What a run learned could not be stored (the run itself went on)."""


class SkipPlan:
    """What a SWIFT run without a given skip set decodes with, and why (`default_skip_plan`): a one-prompt
    `SwiftStream` (stream.py) with lookup drafts on, started from what the store knows about the model.
    `decode` runs a prompt (several, for a stream of them); `save` stores what the runs learned;
    `decode_kwargs` are the pieces for a caller that runs its own `decoding.DecodeSession` (no search)."""

    def __init__(self, stream, model_name: str | None, why: str, kind: str, store=None, used: str | None = None,
                 task: str = GENERATE_TASK, why_base: str | None = None, notes: list[str] = ()):
        self.stream, self.model_name, self.why, self.kind = stream, model_name, why, kind
        self.why_base = why_base  # a searching plan's why without its "(searching ...)": for a run without the search
        self.notes = list(notes)  # entries of the store left out, and why
        self.store, self.used, self.task = store, used, task
        self.note: str | None = None  # after save(): what was stored, or why not

    @property
    def skip_set(self) -> SkipSet:
        return self.stream.search.best

    @property
    def swift(self) -> SwiftParams:
        return self.stream.settings.swift

    @property
    def pace(self):
        return self.stream.pace

    def decode_kwargs(self) -> dict:
        """Arguments for decoding.decode / DecodeSession that decode as this plan does, without its search."""
        return {"method": "swift", "skip_set": self.skip_set, "swift": self.swift, "pace": self.pace}

    def decode(self, input_ids, max_new_tokens: int = 128, sampling: SamplingParams = SamplingParams(),
               seed: int | None = None, on_step=None, **hooks) -> DecodeResult:
        """Decode a prompt with this plan (`on_step` and `hooks`: as decoding.decode's)."""
        unsearched = self._why_no_search(max_new_tokens, sampling)
        if unsearched is not None:  # plain steps and lookup drafts, as the stream's first steps would be
            self.why = _with_notes(f"{self.why_base} ({unsearched})", self.notes)
            return decode(self.stream.model, input_ids, max_new_tokens=max_new_tokens, sampling=sampling, seed=seed,
                          on_step=on_step, **self.decode_kwargs(), **hooks)
        return self.stream.decode(input_ids, max_new_tokens=max_new_tokens, sampling=sampling, seed=seed,
                                  on_step=on_step, **hooks)

    def _why_no_search(self, max_new_tokens, sampling: SamplingParams) -> str | None:
        """Why this prompt is decoded without the search (None: with it, where it still runs)."""
        stream = self.stream
        if stream.search.done or self.why_base is None:
            return None
        if not sampling.greedy:  # its verdict lands at a time-dependent step, and drafting from then on would
            return "no search when sampling: a seeded run repeats exactly"  # use the seeded draws differently
        # the search scores past its window of generated tokens, once its share of the wall time affords a round
        # of pass costs and a scoring step: in a shorter run it would measure the pass costs for nothing
        share = stream.settings.search_share or 1.0
        least = max(stream.search.config.window + 1, math.ceil((stream.ROUND_PASSES + stream.SCORING_PASSES) / share))
        if isinstance(max_new_tokens, int) and max_new_tokens < least:
            return (f"{max_new_tokens} new tokens are too few for a search within {share:.0%} of the time to score a "
                    f"set, about {least} are needed: no search this run")
        return None

    def save(self) -> str | None:
        """Store what the search learned (SwiftStream.save_to, under `task`): a verdict replaces what the
        store held for that task, a set still being judged only a worse-scored one. Returns the line to show
        (also kept as `note`), None when there is nothing new; a store that cannot be written is a
        StoreWarning and that line, never an error: the run's output is already there."""
        import warnings

        stream, search = self.stream, self.stream.search
        if self.store is None or self.model_name is None or search.best_score is None or search.iteration == 0:
            return None
        try:
            key, kept = stream.save_to(self.store, self.model_name, self.task, replace=stream.verdict is not None)
        except (SwiftlabError, OSError) as e:
            self.note = f"warning: what this run learned was not stored: {e}"
            warnings.warn(self.note, StoreWarning, stacklevel=2)
            return self.note
        where = f"{self.store.path} [{key}]"
        self.note = f"not stored: {kept} (kept {where})" if kept else f"stored {_learned(stream)} in {where}"
        return self.note


def _learned(stream) -> str:
    from .stream import PAYS

    search = stream.search
    if stream.verdict == PAYS:
        return f"a skip set expected at {stream.expected_speedup():.2f}x (r={search.best.ratio:.2f})"
    if stream.verdict is not None:
        return "the verdict: layer skipping does not pay here"
    return f"the search so far ({search.iteration} proposals, best matchness {search.best_score:.2f}, not judged yet)"


def model_name_of(model) -> str | None:
    """The name the store keys a model under: `store.model_key` of its folder or hub id, which is the CLI's
    --model name for `lab` and `smollm2-135m` (registry.py's folders carry those names); None if it has none."""
    return _store_name(getattr(getattr(model, "config", None), "_name_or_path", "") or "")


def _store_name(name_or_path) -> str | None:
    from .store import model_key

    return model_key(name_or_path) if str(name_or_path).strip("/\\ ") else None


def default_skip_plan(model, model_name: str | None = None, store=None, swift: SwiftParams = SwiftParams(), *,
                      task: str = GENERATE_TASK, search_share: float | None = None) -> SkipPlan:
    """What to decode `model` with when no skip set is given: what the store knows about it (entries of
    ANY task of the model, best first by stored expected speedup, then matchness), else a start that risks
    nothing.

    - best entry "does not pay": plain steps, lookup drafts where the text repeats (no search);
    - best entry pays (its verdict, or an expected speedup of at least StreamSettings.pays_above): skip
      drafts with it (no search; the step policy still takes plain steps while drafting is measured slower);
    - else (nothing stored, or a set not judged yet): plain steps with lookup drafts while a budgeted search
      (at most `search_share` of the wall time) looks for a set, the skip drafter ruled out until one is
      expected to pay at the pass costs measured here; it starts from the unjudged stored set, if any.

    Entries for another layer count are ignored (the reason is in `why`); an unreadable store is ignored too
    (and never written). `store`: a SkipSetStore, a path, None (the default store) or False (none).
    `search_share`: the search's most share of the wall time (None: PLAN_SEARCH_SHARE).
    `swift.lookup` of 0 becomes 15 (lookup drafts are part of the plan). `task`: the name `save` stores under."""
    from dataclasses import replace

    from ..models.adapters import num_layers
    from .skipsearch import RATIOS, SearchConfig
    from .stream import DOES_NOT_PAY, PAYS, StreamSettings, SwiftStream

    name = _store_name(model_name) if model_name else model_name_of(model)
    search_share = PLAN_SEARCH_SHARE if search_share is None else search_share
    swift = swift if swift.lookup else replace(swift, lookup=LOOKUP_TOKENS)
    # a one-prompt run scores a set or two at most: give up early after two (the start set and a proposal) where
    # even the search's typical gain would not make either pay, so the next run takes plain steps, searching no more
    settings = StreamSettings(swift=swift, search_share=search_share, cautious=True, costs_after_prompt=False,
                              early_after=PLAN_EARLY_AFTER)
    config = SearchConfig(ratios=RATIOS)
    store, entries, notes = _known_entries(_plan_store(store), name, num_layers(model))
    best = entries[0] if entries else None
    pays = best is not None and (best.verdict == PAYS or (best.verdict is None and best.expected_speedup is not None
                                                          and best.expected_speedup >= settings.pays_above))
    if best is not None and (best.verdict == DOES_NOT_PAY or pays):
        stream = SwiftStream.from_store(model, store, name, best.task, config, settings)
        if pays:
            expected = f"expected {best.expected_speedup:.2f}x" if best.expected_speedup is not None else best.verdict
            why = (f"skip drafts with the stored set {best.key} ({expected}), lookup drafts where the text repeats, "
                   "plain steps while drafting is measured slower")
        else:
            why = (f"plain steps, lookup drafts where the text repeats: layer skipping does not pay on {name} here "
                   f"(stored verdict, {best.key})")
        return SkipPlan(stream, name, _with_notes(why, notes), "stored set" if pays else "stored verdict", store,
                        best.key, task, notes=notes)
    stream = SwiftStream(model, config, best.skip_set if best else None, settings)
    known = (f"the stored set {best.key} is not judged yet" if best else
             f"no skip set known for {name or 'this model'} yet")
    # from the first step (the stream steers drafting after verifications): cautious, its search lifts this
    # once a set is expected to pay at the pass costs measured here
    stream.pace.rule_out("skip", f"{stream.HOPELESS}{known}: plain steps (lookup drafts where the context repeats) "
                                 "until the search finds a set expected to pay")
    if best is not None:
        stream.started_from = f"{store.path} [{best.key}]"
    searching = f"searching within {search_share:.0%} of the time" + ("" if store else ", storing nothing")
    base = f"lookup drafts where the text repeats, plain steps elsewhere: {known}"
    return SkipPlan(stream, name, _with_notes(f"{base} ({searching})", notes), "searching", store,
                    best.key if best else None, task, why_base=base, notes=notes)


def _plan_store(store):
    from .store import SkipSetStore

    if store is False:
        return None
    return store if isinstance(store, SkipSetStore) else SkipSetStore(store)


def _known_entries(store, name: str | None, layers: int):
    """(the store, or None where it cannot be used; its usable entries for the model, best first; notes)."""
    if store is None or name is None:
        return None, [], ([] if store is None else ["the model has no name to store what it learns under"])
    try:
        found = store.for_model(name, layers)
    except SwiftlabError as e:  # a corrupt store: decode without it, and never overwrite it
        return None, [], [f"the store could not be read, so nothing is stored: {e}"]
    notes = [f"ignored {e.key}: {e.unusable}" for e in found if e.skip_set is None]
    return store, [e for e in found if e.skip_set is not None], notes


def _with_notes(why: str, notes: list[str]) -> str:
    return why + "".join(f"; {note}" for note in notes)
