"""The ways of drafting one step, one class each, behind one interface (transformers' candidate
generators are the model): `draft(run, cur, n, cap)` returns the DraftTree the full model verifies next,
for the pending token `cur` at cache position n, at most `cap` tokens deep. `run` is the decoding
session (decoding.DecodeSession): its cache, its `forward`, its context.

- SkipDrafter: the model itself with the skip set's sub-layers off (transformers' forward under
  `skipping`), one token at a time while it is confident; with tree verification also, per depth,
  runner-up candidates (more where it is less sure). LeanSkipDrafter is the same drafter through
  leandraft.py, without transformers' per-call overhead.
- LookupDrafter: where the last tokens occurred before, what followed them there (lookup.py), as a fixed chain.
- GatedLookup: the skip drafter's first token decides whether the lookup continuation is verified
  (unless the last lookup continuation was accepted whole: policy.py).
- PlainStep: drafts nothing; verifying the pending token alone is the autoregressive step.

Which one runs is policy.py's choice. Verification decides every token, so no drafter can change the output.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from .leandraft import LeanDrafter, lean_drafter, note_step_aside
from .lookup import PURE_NGRAMS, PURE_TOKENS, lookup_continuation
from .sampling import probabilities, sample
from .skipping import skipping
from .skipset import SkipSet
from .tree import CPU_GREEDY_SIBLINGS, GREEDY_SIBLINGS, DraftTree, candidates_for

NOTHING_LEFT = "nothing drafted: one token is left to write, and the full model writes it"


class PlainStep:
    """Drafts nothing: the full model verifies the pending token alone and writes the next one."""

    def draft(self, run, cur: int, n: int, cap: int) -> DraftTree:
        """An empty DraftTree of source "ar": nothing to roll back, and the verify pass over `cur` alone
        yields the step's one token."""
        return DraftTree(source="ar")


class SkipDrafter:
    """The model with `skip_set`'s sub-layers off, drafting through transformers."""

    def __init__(self, run, skip_set: SkipSet, swift):
        self.skip_set, self.epsilon, self.max_tree = skip_set, swift.epsilon, swift.max_tree
        self.sampling, self.generator, self.eos = run.sampling, run.generator, run.eos
        if not run.tree:
            self.candidates = None  # chain verification: no runner-ups
        elif not run.sampling.greedy:
            self.candidates = swift.sampling_candidates
        else:
            self.candidates = swift.greedy_candidates or (
                CPU_GREEDY_SIBLINGS if run.device.type == "cpu" else GREEDY_SIBLINGS)

    def use(self, skip_set: SkipSet) -> None:
        """Draft with another skip set from now on (the search found a better one)."""
        self.skip_set = skip_set

    def switched_off(self, run):
        """A context manager under which `run.model` runs with the skip set's sub-layers off
        (`skipping`); the model is as it was after the block."""
        return skipping(run.model, self.skip_set)

    def logits(self, run, token: int, position: int) -> torch.Tensor:
        """The skipping model's logits [vocab] for `token` at cache `position`; its KV entries go into
        the run's cache, which drops them before verification."""
        return run.forward([token], position)[-1]

    def draft(self, run, cur: int, n: int, cap: int) -> DraftTree:
        """The skipping model's chain after `cur` (at position `n`), with runner-ups per depth under tree
        verification, until the drafter is unsure (top-1 below epsilon), drafts end-of-text, or has `cap` tokens."""
        with self.switched_off(run):
            return self.grow(run, DraftTree(), cur, n, cap)

    def guess(self, run, token: int, position: int) -> tuple[int, float, torch.Tensor]:
        """One draft pass: (the next token, the drafter's top-1 probability, its distribution)."""
        probs = probabilities(self.logits(run, token, position), self.sampling)
        if self.sampling.greedy:
            confidence, top = probs.max(-1)
            return int(top), float(confidence), probs
        return sample(probs, self.generator), float(probs.max()), probs

    def grow(self, run, tree: DraftTree, token: int, n: int, cap: int) -> DraftTree:
        """Draft on from depth len(tree.chain), `token` being the last token so far, until the drafter
        is unsure, writes end-of-text, or reaches `cap`."""
        for depth in range(len(tree.chain), cap):
            token, confidence, probs = self.guess(run, token, n + depth)
            if self.add(tree, token, confidence, probs):
                return tree
        tree.stop = f"drafting stopped at the length cap of {cap}" if cap else NOTHING_LEFT
        return tree

    def add(self, tree: DraftTree, token: int, confidence: float, probs: torch.Tensor) -> bool:
        """Put `token` on the chain with its runner-ups; True where the chain ends with it."""
        if not self.sampling.greedy:
            tree.draft_probs.append(probs)
        tree.chain.append(token)
        tree.siblings.append(self.runner_ups(probs, token, confidence, tree.size))
        if token in self.eos:  # nothing after end-of-text is ever needed
            tree.stop = "drafting stopped at end-of-text"
        elif confidence < self.epsilon:
            tree.stop = (f"drafting stopped: the drafter's top-1 probability {confidence:.2f} fell below "
                         f"epsilon = {self.epsilon}")
        return bool(tree.stop)

    def runner_ups(self, probs: torch.Tensor, chain_token: int, confidence: float, size: int) -> list[int]:
        """Candidates besides the chain token at one depth: the top tokens when greedy; for sampling,
        further draws from q without replacement (what keeps recursive rejection sampling lossless)."""
        if self.candidates is None:
            return []
        count = min(candidates_for(confidence, self.candidates) - 1, self.max_tree - size - 1,
                    int((probs > 0).sum()) - 1)
        if count <= 0:
            return []
        if self.sampling.greedy:
            top = torch.topk(probs, count + 1).indices.tolist()
            return [t for t in top if t != chain_token][:count]
        q = probs.clone()
        out = []
        for _ in range(count):
            q[out[-1] if out else chain_token] = 0.0
            if q.sum() <= 0:
                break
            out.append(sample(q / q.sum(), self.generator))
        return out


class LeanSkipDrafter(SkipDrafter):
    """The same drafter through leandraft.py: the bare arithmetic of the kept sub-layers."""

    def __init__(self, run, skip_set: SkipSet, swift, lean: LeanDrafter):
        super().__init__(run, skip_set, swift)
        self.lean = lean

    def switched_off(self, run):
        """A context that does nothing: the lean pass leaves the skipped sub-layers out itself, so the model's
        modules are never touched."""
        return nullcontext()  # the lean pass leaves the skipped sub-layers out itself

    def logits(self, run, token: int, position: int) -> torch.Tensor:
        """The lean pass's logits [vocab] for `token` at `position` with the current skip set
        (LeanDrafter.logits); like SkipDrafter's, its KV entries go into the run's cache."""
        return self.lean.logits(token, position, run.cache, self.skip_set)


def skip_drafter(run, skip_set: SkipSet, swift) -> SkipDrafter:
    """The lean drafter where the model and `swift` allow it, else the transformers one."""
    lean = lean_drafter(run.model, run.cache, swift.draft_dtype, compiled=swift.compile) if swift.lean_draft else None
    if swift.lean_draft and lean is None:
        note_step_aside(run.model)
    return LeanSkipDrafter(run, skip_set, swift, lean) if lean else SkipDrafter(run, skip_set, swift)


class LookupDrafter:
    """A lookup continuation (lookup.py) as a fixed chain. `offer` looks for one before the step's
    kind is chosen; `draft` hands it over. For sampling its q is one-hot, so rejection sampling accepts
    token x with probability p(x) and otherwise samples p without x: still exactly the full model's
    distribution.

    How many tokens it offers grows while its continuations are accepted whole (3, 7, 15, ... up to
    `swift.lookup`) and drops back after one is cut short: most continuations are wrong from their
    first token, while a copied span, once its first tokens are confirmed, usually runs on. It drops to
    SHORT (3: a verify pass over 4, which costs about what one over 1 does), or to LONG (7) where the
    policy measured a verify pass over 8 tokens at little more than one over 4 (`long`, greedy only:
    the lab model, where a summary resumes copying right after a miss; SmolLM2 on a CPU pays 1.5
    times as much for it, smallbatch.py). `copying` says that the last continuation was accepted whole:
    then the next one is verified without the gate's draft pass (policy.StepPolicy.choose).
    Both follow accepted tokens, and `long` measured costs only when greedy, so a seeded run still
    repeats exactly. Where the stream chose pure prompt lookup (`pure`, greedy), it offers as transformers
    does: 2- then 1-gram matches, PURE_TOKENS every time (at most `swift.lookup`)."""

    SHORT = 3  # tokens offered after a continuation was cut short (a verify pass over 4) ...
    LONG = 7  # ... or this many where a verify pass over LONG + 1 is measured cheap

    def __init__(self, run, swift, long: bool = False, pure: bool = False):
        self.longest, self.ngrams = swift.lookup, swift.lookup_ngrams
        self.pure = pure and run.sampling.greedy
        if self.pure:
            self.longest, self.ngrams = min(PURE_TOKENS, swift.lookup), PURE_NGRAMS
        self.eos, self.greedy = run.eos, run.sampling.greedy
        self.vocab = run.model.get_input_embeddings().num_embeddings
        self.continuation: list[int] = []
        self.length = self.restart(long)  # tokens the next offer may hold
        self.copying = False  # the last verified continuation was accepted whole

    def restart(self, long: bool) -> int:
        """The length of an offer after a miss: LONG where `long`, else SHORT (at most `swift.lookup`);
        pure lookup's fixed length."""
        if self.pure:
            return self.longest
        return min(self.LONG if long else self.SHORT, self.longest)

    def verified(self, tree: DraftTree, path: list[int], long: bool = False) -> None:
        """After a step: grow the next offer if this step's lookup continuation was accepted whole, else
        restart it (`long`: at LONG); note whether it was accepted whole (`copying`)."""
        if tree.source != "lookup":
            return
        whole = path == list(range(len(tree.chain)))  # every chain node, none of the siblings
        self.copying = whole
        self.length = min(2 * self.length + 1, self.longest) if whole else self.restart(long)

    def offer(self, run) -> bool:
        """Look for a continuation of the context; True where there is one."""
        found = lookup_continuation(run.context(), min(self.length, run.remaining - 1), self.ngrams)
        end = next((i + 1 for i, t in enumerate(found) if t in self.eos), len(found))
        self.continuation = found[:end]  # nothing after end-of-text is ever needed
        return bool(self.continuation)

    def draft(self, run, cur: int, n: int, cap: int) -> DraftTree:
        """The continuation the last `offer` found, cut to `cap` tokens (a `max_draft` below the lookup length),
        as a chain without siblings (with one-hot q's when sampling). `cur` and `n` are not read."""
        chain = self.continuation[:cap]
        tree = DraftTree(chain=list(chain), siblings=[[] for _ in chain], source="lookup",
                         stop=f"the lookup continuation ({len(chain)} tokens) is verified")
        if not self.greedy:
            tree.draft_probs = list(torch.nn.functional.one_hot(torch.tensor(chain, device=run.device),
                                                                self.vocab).float())
        return tree


class GatedLookup:
    """Greedy skip drafting where a lookup continuation is on offer: the skip drafter drafts its first
    token as usual; where that is the lookup's first token, or where it is unsure of it (its own chain
    would end there), the lookup continuation is verified, with the drafter's top candidates as
    siblings; otherwise its own chain. The drafter decides for free: its first pass is needed anyway."""

    def __init__(self, skip: SkipDrafter, lookup: LookupDrafter):
        self.skip, self.lookup = skip, lookup

    def draft(self, run, cur: int, n: int, cap: int) -> DraftTree:
        """Draft the first token with the skip drafter; where it is the lookup's first token or the
        drafter is unsure, verify the lookup continuation (cut to `cap`) with the drafter's runner-ups, else grow the
        drafter's own chain. Only after the lookup's `offer` found a continuation."""
        follow, tree = self.lookup.continuation, DraftTree()
        if cap == 0:
            tree.stop = NOTHING_LEFT
            return tree
        with self.skip.switched_off(run):
            token, confidence, probs = self.skip.guess(run, cur, n)
            if token == follow[0] or confidence < self.skip.epsilon:
                return self._lookup(tree, follow[:cap], confidence, probs)
            if self.skip.add(tree, token, confidence, probs):
                return tree
            return self.skip.grow(run, tree, token, n, cap)

    def _lookup(self, tree: DraftTree, chain: list[int], confidence: float, probs: torch.Tensor) -> DraftTree:
        tree.chain, tree.source = list(chain), "lookup"
        tree.siblings = [self.skip.runner_ups(probs, chain[0], confidence, 1)] + [[] for _ in chain[1:]]
        tree.stop = (f"the context repeats and the drafter agreed with (or was unsure of) its first token: "
                     f"the lookup continuation ({len(chain)} tokens) is verified")
        return tree
