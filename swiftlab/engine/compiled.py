"""Compiled full-model passes, opt-in: `SwiftParams(compile=True)`, `--compile`.

Why: at batch 1 a small model's pass is mostly Python and per-operator dispatch, not arithmetic (the lab
model's weights read in ~1 ms, its eager pass takes ~10; benchmarks/limit.py). torch.compile traces the
model's own forward once into one graph (inductor: generated C++ on a CPU, called from its C++ wrapper; Triton
on a GPU) and replays it.

What makes a compiled pass fast on a CPU: its one-row matrix products (a one-token pass is little else) become
a multiply and a sum that inductor compiles into one vectorized, threaded loop, where the BLAS's matrix-vector
product reads the weights at a third of the speed (inductor.py). Lab model: a one-token pass 9 ms eager,
6.4 compiled with the BLAS's products, 2.2-3.0 with these; SmolLM2-135M 62 ms eager, 21.6 compiled (2026-12-03).

What is compiled: the full model's passes after the prompt, the ones verification and plain steps take,
through the run's own cache (cache.py). The graph is traced with dynamic shapes, so one graph serves every
context length and every verify width; a pass under a tree attention mask is a second graph, a one-token
pass a third (torch specializes size 1). The prompt pass stays eager (it runs once per prompt, and it is
the one that allocates the cache). The lean drafter's pass is a fourth graph, its skip set data
(compileddraft.py); drafts through transformers' modules (families without a lean drafter) stay eager, a
skip set being Python control flow there (skipping.py), and a graph per skip set a compile per search step.

Compiling takes about a minute per graph for the lab model and 1-3.5 minutes for SmolLM2-135M (30 layers)
on a CPU, once per process and model (inductor keeps its kernels on disk, so a later process compiles
faster): `compile_passes` does it up front, with progress, and says how long each graph took. Models with
sliding-window layers are refused: their cache changes shape as the window slides, and every pass compiled again. The compiled passes compute what the eager ones do, in a different
order of floating-point operations; the output is the compiled model's greedy decoding, and
autoregressive decoding with `compile=True` runs the same graphs, so the two stay token-identical.
"""

from __future__ import annotations

import time
import weakref

import torch
from torch import nn
from tqdm.auto import tqdm

from ..models.adapters import input_device, num_layers
from ..support.errors import SwiftlabError
from .cache import SkipAwareCache
from .compileddraft import compile_seconds_of
from .guards import lightly_guarded, with_own_code
from .inductor import inductor
from .leandraft import lean_drafter
from .skipset import SkipSet
from .tree import DraftTree, tree_mask, tree_positions

# model -> (the compiled forward, {graph kind: seconds its first call took}, the compile_passes requests whose
# graphs all exist: a run's check is then its weights' alone); the compiled forward reaches its
# model through a weak reference, so that an entry does not keep its own key alive (a compiled nn.Module holds
# its model, and a WeakKeyDictionary value that holds its key is never freed)
_COMPILED: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
GRAPHS = ("one-token", "verify", "tree", "draft")  # the kinds of pass `compile_passes` compiles
# the scratch prompt's tokens, the traced verify width and the scratch cache's positions: primes, unlike any
# model's sizes (see compile_passes)
PROMPT, WIDTH, CAPACITY = 11, 7, 67


def compiled_forward(model: nn.Module):
    """The model's forward compiled with dynamic shapes, made once per model (compiling happens at its first
    calls: see compile_passes)."""
    held = _COMPILED.get(model)
    if held is None:
        # on a CPU, inductor's C++ wrapper calls the kernels from generated C++ instead of Python: lab model,
        # AR 7.1 instead of 9.5 ms a token, for a compile of 140 instead of 41 s (measured 2026-12-03)
        cpu = input_device(model).type == "cpu"
        seconds = {}
        compiled = torch.compile(_weak_forward(model), dynamic=True, backend=inductor(cpu))
        held = (_LightlyGuarded(compiled, seconds), seconds, set())
        _COMPILED[model] = held
    return held[0]


class _LightlyGuarded:
    """A compiled forward whose calls of a kind of pass compile_passes has compiled check only the guards that
    tell its graphs apart (guards.py); a kind with no graph yet is called under every guard, and compiles."""

    def __init__(self, compiled, seconds: dict):
        self.compiled, self.seconds = compiled, seconds  # seconds: the kinds compile_passes compiled
        self.light, self.weights = True, None

    def __call__(self, **inputs):
        if self.light and pass_kind(inputs) in self.seconds:
            return lightly_guarded(self.compiled, **inputs)
        return self.compiled(**inputs)

    def check_weights(self, model: nn.Module) -> bool:
        """Whether light guards still hold for this model (checked once a run, 0.4 ms on the lab model): they
        skip the parameters' checks, so once its parameters are other tensors than when its graphs were
        compiled (cast, resized, replaced), every call checks every guard."""
        weights = tuple((id(p), p.dtype, p.shape, p.device) for p in model.parameters())
        self.weights = self.weights or weights
        self.light = self.light and weights == self.weights
        return self.light


def pass_kind(inputs: dict) -> str:
    """Which of GRAPHS a full pass with these inputs runs."""
    if inputs.get("attention_mask") is not None:
        return "tree"
    return "one-token" if inputs["input_ids"].shape[1] == 1 else "verify"


def _weak_forward(model: nn.Module):
    """A function calling the model (its __call__, hooks included) that does not keep it alive."""
    model_ref = weakref.ref(model)

    def forward(**inputs):
        return model_ref()(**inputs)
    return with_own_code(forward)


def compile_seconds(model: nn.Module) -> dict:
    """Seconds the first call of each compiled graph took for this model ({} before compile_passes)."""
    held = _COMPILED.get(model)
    return dict(held[1]) if held else {}


def compile_passes(model: nn.Module, tree: bool = True, progress: bool = True, draft: str | None = "auto",
                   verify: bool = True) -> dict:
    """Compile the model's passes now (a one-token pass; with `verify` a verify pass, which autoregressive
    decoding never takes; with `tree` one under a tree mask; with a `draft` precision (leandraft.DRAFT_DTYPES)
    the lean draft pass, where the model has one) on a scratch
    cache, with a progress bar; {graph kind: seconds}. Graphs compiled before are not compiled again (their
    seconds are the ones measured then)."""
    forward = compiled_forward(model)
    _, seconds, ready = _COMPILED[model]
    light, request = forward.check_weights(model), (tree, verify, draft)
    if light and request in ready:
        # every graph asked for exists and the weights are the ones they were compiled for: no scratch cache
        # nor drafter to build (4 ms a run on the lab model, 3% of a short answer's compiled decode)
        return compile_seconds(model)
    # sizes unlike a model's own (head counts, head size): a traced size equal to one of those can be fixed
    # in the graph (a guard on it) and any other value compiles again
    cache = SkipAwareCache(model.config, rollback=False, capacity=CAPACITY)
    if any(cache.is_sliding):
        # measured on a tiny Gemma 2: tokens right, but 5 graphs more than three over 12 short runs
        raise SwiftlabError(f"compile=True: {type(model).__name__} has sliding-window attention layers, whose cache "
                            "changes shape as the window slides, so its passes would compile again and again; "
                            "decode it without compile")
    lean = lean_drafter(model, cache, draft, compiled=True) if draft else None
    lean = lean if lean is not None and lean.compiled is not None else None  # (compiled drafts: on a CPU)
    if lean is not None:
        lean.compiled.graph.light = light
    wanted = [g for g in GRAPHS if (tree or g != "tree") and (verify or g != "verify") and (lean or g != "draft")
              and (g not in seconds if g != "draft" else compile_seconds_of(lean) is None)]
    if not wanted:
        ready.add(request)
        return compile_seconds(model)
    device = input_device(model)
    vocab = model.get_input_embeddings().num_embeddings
    eager = getattr(model.config, "_attn_implementation", "sdpa") == "eager"
    additive = model.get_input_embeddings().weight.dtype if eager else None
    with torch.inference_mode(), tqdm(total=len(wanted), desc="compiling passes", disable=not progress) as bar:
        # made under inference mode, as a run's inputs are: a tensor made outside is another graph's input
        ids = (torch.arange(PROMPT + WIDTH, device=device) % (vocab - 1) + 1).view(1, -1)
        model(input_ids=ids[:, :PROMPT], cache=cache, use_cache=True)  # the prompt pass, eager
        for kind in wanted:
            bar.set_postfix_str(f"{kind} pass (a minute or more on a CPU)")
            n = cache.get_seq_length()
            t0 = time.perf_counter()
            if kind == "draft":  # a skip set's flags are data: any one compiles the graph for all
                lean.logits(int(ids[0, n]), n, cache, SkipSet.uniform(num_layers(model), 0.5))
            else:
                forward(**_scratch_inputs(kind, ids, n, additive), cache=cache, use_cache=True)
            seconds[kind] = time.perf_counter() - t0
            cache.crop_to(PROMPT)
            bar.update(1)
        bar.set_postfix_str(", ".join(f"{k} {s:.0f} s" for k, s in seconds.items()))
    ready.add(request)
    return compile_seconds(model)


def _scratch_inputs(kind: str, ids: torch.Tensor, n: int, additive) -> dict:
    """A full pass's inputs after `n` cached positions, made exactly as DecodeSession.forward makes them: other
    arguments would be other graphs."""
    device = ids.device
    if kind == "tree":
        tree = DraftTree(chain=[3, 4, 5, 6], siblings=[[7, 8], [], [], []])  # WIDTH with the pending token
        return dict(input_ids=torch.tensor([[2] + tree.tokens()], device=device),
                    position_ids=tree_positions(tree, n, device),
                    attention_mask=tree_mask(tree, n, additive_dtype=additive, device=device))
    # a new tensor, as a run's: a slice's strides would be another guard
    tokens = torch.tensor([ids[0, n:n + (1 if kind == "one-token" else WIDTH)].tolist()], device=device)
    return dict(input_ids=tokens, position_ids=torch.arange(n, n + tokens.shape[1], device=device).unsqueeze(0),
                attention_mask=None)
