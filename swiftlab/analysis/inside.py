"""Inside one decoding step: records the lab's teaching widgets draw, taken from the engine itself.

Each function runs the real engine (DecodeSession with its observer hook, the real tree mask, the
real rejection sampling, the model through the adapter) and returns a plain record that
round-trips through JSON; the widgets in swiftlab.widgets only draw these.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import torch
from torch import nn

from ..models.adapters import adapter_for, input_device, num_layers
from .bench import compare
from ..engine.decoding import DecodeSession, SwiftParams
from ..support.errors import SwiftlabError
from ..engine.records import DecodeResult, JsonRecord
from ..engine.sampling import SamplingParams, probabilities
from ..engine.skipping import skipping_rows
from ..engine.skipset import SkipSet
from ..engine.tree import DraftTree, accept_sampled

STAGES = ("start", "drafted", "verified", "kept")  # the observer's stages inside one draft/verify cycle


@dataclass
class StepTrace(JsonRecord):
    """One full-model pass as the engine ran it, with the KV cache's per-layer length at each stage."""
    index: int
    kind: str
    reason: str
    position: int  # cache positions before the pass; the pending token (the tree's root) sits here
    root: int  # the pending token
    chain: list[int]
    siblings: list[list[int]]
    path: list[int]  # accepted node indices
    new_tokens: list[int]
    seconds: float
    cache_lengths: dict = field(default_factory=dict)  # stage -> entries held per layer

    @property
    def tree(self) -> DraftTree:
        """The pass's draft tree, rebuilt from `chain` and `siblings`."""
        return DraftTree(chain=list(self.chain), siblings=[list(s) for s in self.siblings])


def trace_steps(model: nn.Module, prompt_ids: list[int], skip_set: SkipSet, *, max_new_tokens: int = 32,
                swift: SwiftParams = SwiftParams(fallback=False)) -> list[StepTrace]:
    """Greedy SWIFT decoding of one prompt, every pass recorded (the prompt pass first)."""
    lengths: dict[str, list[int]] = {}

    def observe(stage, run, **_):
        lengths[stage] = [layer.get_seq_length() if getattr(layer, "is_initialized", True) else 0
                          for layer in run.cache.layers]

    session = DecodeSession(model, prompt_ids, method="swift", skip_set=skip_set, max_new_tokens=max_new_tokens,
                            swift=swift, observer=observe)
    traces, pending = [], None
    while not session.done:
        lengths = {}
        event = session.step()
        traces.append(StepTrace(event.index, event.kind, event.reason, event.position,
                                pending if pending is not None else -1, event.drafted, event.siblings, event.path,
                                event.new_tokens, event.seconds, dict(lengths)))
        pending = event.new_tokens[-1]
    return traces


@dataclass
class RejectionRecord(JsonRecord):
    """Speculative sampling at one real position: the drafter's q and the full model's p there."""
    context_ids: list[int]  # prompt and output before the position
    q: list[float]  # the drafter's distribution (the skipping model), over the vocabulary
    p: list[float]  # the full model's distribution at the same position
    temperature: float

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(p, q) as tensors: the full model's distribution first, then the drafter's."""
        return torch.tensor(self.p), torch.tensor(self.q)

    @property
    def accept_probability(self) -> float:
        """Chance a draft x ~ q is accepted: sum over x of q(x) min(1, p(x)/q(x)) = sum min(p, q)."""
        p, q = self.tensors()
        return float(torch.minimum(p, q).sum())

    def residual(self) -> torch.Tensor:
        """Where a rejected draft's replacement is drawn from: max(p - q, 0), normalised."""
        p, q = self.tensors()
        r = torch.clamp(p - q, min=0.0)
        return r / r.sum() if r.sum() > 0 else p


def rejection_position(model: nn.Module, prompt_ids: list[int], skip_set: SkipSet, *, temperature: float = 1.0,
                       seed: int = 0, max_new_tokens: int = 32) -> RejectionRecord:
    """q and p at a drafted position of a sampled SWIFT run: of every position drafted in the run, the one
    where drafter and full model agree least (where rejection sampling has most to do)."""
    sampling = SamplingParams(temperature=temperature)
    found = []

    def observe(stage, run, tree=None, logits=None, **_):
        if stage == "verified" and tree.source == "skip":
            p = probabilities(logits, sampling)
            for depth, q in enumerate(tree.draft_probs):  # row `depth` is p after the chain's first `depth` drafts
                found.append(RejectionRecord(run.context() + tree.chain[:depth], q.tolist(), p[depth].tolist(),
                                             temperature))

    session = DecodeSession(model, prompt_ids, method="swift", skip_set=skip_set, max_new_tokens=max_new_tokens,
                            sampling=sampling, seed=seed, swift=SwiftParams(verify="chain", fallback=False),
                            observer=observe)
    while not session.done:
        session.step()
    if not found:
        raise SwiftlabError("the run ended before the drafter drafted; try another prompt or more new tokens")
    return min(found, key=lambda r: r.accept_probability)


def draw_once(record: RejectionRecord, generator: torch.Generator) -> tuple[int, int, bool]:
    """One round of speculative sampling at the record's position, through the engine's own
    accept_sampled: (drafted token x ~ q, emitted token, accepted?)."""
    p, q = record.tensors()
    drafted = int(torch.multinomial(q, 1, generator=generator))
    tree = DraftTree(chain=[drafted], siblings=[[]], draft_probs=[q])
    new, path = accept_sampled(tree, torch.stack([p, p]), generator)  # row 1 (the bonus) is not used here
    return drafted, new[0], bool(path)


@dataclass
class LensRecord(JsonRecord):
    """What the model would predict at one position if it stopped after each sub-layer."""
    labels: list[str]  # "embedding", then "0 attention", "0 MLP", "1 attention", ...
    top_tokens: list[int]  # the top-1 token after each point
    top_probs: list[float]
    final_token_probs: list[float]  # probability of the full model's own prediction after each point
    final_token: int
    skipped: list[bool]  # is that sub-layer in the skip set (False for the embedding)
    position: int


def logit_lens(model: nn.Module, ids: list[int], skip_set: SkipSet | None = None, position: int = -1) -> LensRecord:
    """Final norm and output head (where the adapter says they are) applied to the residual stream
    after every sub-layer. The stream after layer i's attention is layer i's output with its MLP
    skipped, so one batched pass (row i skips MLP i, the last row skips nothing) gives every point
    through the same skipping machinery SWIFT drafts with."""
    L = num_layers(model)
    layers = adapter_for(model).layers(model)
    rows = [SkipSet((), (i,), L, allow_edges=True) for i in range(L)] + [SkipSet((), (), L, allow_edges=True)]
    captured: dict[int, torch.Tensor] = {}
    hooks = [layer.register_forward_hook(lambda _m, _a, out, i=i: captured.__setitem__(
        i, out[0] if isinstance(out, tuple) else out)) for i, layer in enumerate(layers)]
    hooks.append(layers[0].register_forward_pre_hook(lambda _m, args, kwargs: captured.__setitem__(
        -1, args[0] if args else kwargs["hidden_states"]), with_kwargs=True))
    batch = torch.tensor([ids] * len(rows), device=input_device(model))
    try:
        with torch.inference_mode(), skipping_rows(model, rows):
            model(input_ids=batch, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    points = [captured[-1][-1]]
    for i in range(L):
        points += [captured[i][i], captured[i][L]]  # after attention (MLP i skipped), after the MLP
    with torch.inference_mode():
        streams = torch.stack([h[position].to(batch.device) for h in points])  # layers may sit on several devices
        probs = torch.softmax(model.get_output_embeddings()(adapter_for(model).final_norm(model)(streams)).float(), -1)
    final = int(probs[-1].argmax())
    skip = skip_set or SkipSet((), (), L, allow_edges=True)
    labels, skipped = ["embedding"], [False]
    for i in range(L):
        labels += [f"{i} attention", f"{i} MLP"]
        skipped += [i in skip.attention, i in skip.mlp]
    top = probs.max(-1)
    return LensRecord(labels, top.indices.tolist(), top.values.tolist(), probs[:, final].tolist(), final, skipped,
                      position if position >= 0 else len(ids) + position)


@dataclass
class RaceRecord(JsonRecord):
    """Two decodings of one prompt, pass by pass: when each pass ended and the tokens it emitted."""
    prompt_ids: list[int]
    ends_s: dict  # method -> seconds since the start at the end of each pass
    tokens: dict  # method -> tokens emitted by each pass

    def at(self, method: str, seconds: float) -> tuple[list[int], int]:
        """The tokens written and passes done by `seconds` after the start."""
        done = [i for i, end in enumerate(self.ends_s[method]) if end <= seconds]
        return [t for i in done for t in self.tokens[method][i]], len(done)


def race(model: nn.Module, prompt_ids: list[int], skip_set: SkipSet, *, max_new_tokens: int = 64,
         swift: SwiftParams = SwiftParams()) -> RaceRecord:
    """Run plain and SWIFT decoding of the same prompt (after a short warm-up of each), timing every pass."""
    ends, tokens = {}, {}
    for method in ("ar", "swift"):
        make = lambda n: DecodeSession(model, prompt_ids, method=method, skip_set=skip_set if method == "swift" else None,
                                       max_new_tokens=n, swift=swift)
        warm = make(4)
        while not warm.done:  # first passes pay one-off allocation costs: keep them out of the race
            warm.step()
        session, clock = make(max_new_tokens), 0.0
        ends[method], tokens[method] = [], []
        while not session.done:
            event = session.step()
            clock += event.seconds
            ends[method].append(clock)
            tokens[method].append(event.new_tokens)
    return RaceRecord(list(prompt_ids), ends, tokens)


@dataclass
class SpeedupRecord(JsonRecord):
    """A measured run next to the expected-speedup formula's inputs (medians over runs)."""
    alpha: float  # share of drafted tokens accepted
    gamma: float  # drafted tokens per drafting pass
    cost: float  # one draft pass's time over one plain full-model pass's (c)
    verify_cost: float  # one verifying pass (the whole draft tree at once) over one plain pass
    speedups: list[float]  # autoregressive time / SWIFT time, one per (prompt, repeat), after a warm-up
    runs: int

    @property
    def median(self) -> float:
        """The median of the measured `speedups`."""
        return statistics.median(self.speedups)


def expected_tokens_per_pass(alpha: float, gamma: float) -> float:
    """Leviathan et al.'s expected tokens per full pass: (1 - a^(g+1)) / (1 - a) (g + 1 at a = 1)."""
    return gamma + 1.0 if alpha >= 1.0 else (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


def expected_speedup(alpha: float, gamma: float, cost: float, verify_cost: float = 1.0) -> float:
    """Tokens per pass over the pass's price: gamma draft passes at `cost` each plus one verifying pass
    (`verify_cost` plain passes; the formula's own assumption is 1)."""
    return expected_tokens_per_pass(alpha, gamma) / (gamma * cost + verify_cost)


def pass_costs(swift: DecodeResult, ar: DecodeResult) -> tuple[float, float] | None:
    """(draft pass, verifying pass) time over a plain pass's, from the two runs' own timings: draft seconds
    per drafted token (one draft pass each), verify seconds per verifying pass, and the plain run's
    seconds per plain step (the prompt pass left out of both)."""
    drafting = [i for i, kind in enumerate(swift.step_kinds) if kind == "skip"]
    draft_passes = sum(swift.drafted_per_step[i] for i in drafting)
    verify_passes, plain_steps = len(swift.step_kinds) - 1, ar.steps - 1
    if not draft_passes or not verify_passes or not plain_steps or not ar.timings_s["verify"]:
        return None
    plain = ar.timings_s["verify"] / plain_steps
    return (swift.timings_s["draft"] / draft_passes) / plain, (swift.timings_s["verify"] / verify_passes) / plain


def measure_speedup(model: nn.Module, prompts: list[list[int]], skip_set: SkipSet, *, max_new_tokens: int = 48,
                    repeats: int = 2, progress: bool = True) -> SpeedupRecord:
    """Drafting every step (no plain-step fallback, which the formula does not model), interleaved with
    autoregressive decoding (bench.compare: warm-up first); only runs with the same output both ways count."""
    runs = compare(model, prompts, skip_set, max_new_tokens=max_new_tokens, repeats=repeats,
                   swift=SwiftParams(fallback=False), progress=progress)
    pairs = [(a, s) for a, s in zip(runs.ar, runs.swift) if a.token_ids == s.token_ids]
    if not pairs:
        raise SwiftlabError("no run produced the same output both ways; nothing to compare")
    drafting = [(a, s) for a, s in pairs if sum(s.drafted_per_step)]
    costs = [c for c in (pass_costs(s, a) for a, s in drafting) if c is not None]
    gammas = [sum(s.drafted_per_step) / max(s.step_kinds.count("skip"), 1) for _, s in drafting]
    median = lambda values, empty: statistics.median(values) if values else empty
    return SpeedupRecord(alpha=median([s.acceptance_rate for _, s in drafting], 0.0), gamma=median(gammas, 0.0),
                         cost=median([c for c, _ in costs], 1.0), verify_cost=median([v for _, v in costs], 1.0),
                         speedups=[a.wall_s / s.wall_s for a, s in pairs], runs=len(pairs))
