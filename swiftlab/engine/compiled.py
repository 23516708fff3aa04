"""Compiled full-model passes, opt-in: `SwiftParams(compile=True)`, `--compile`.

Why: at batch 1 a small model's pass is mostly Python and per-operator dispatch, not arithmetic (the lab
model's weights read in ~1 ms, its eager pass takes ~10; benchmarks/limit.py). torch.compile traces the
model's own forward once into one graph (inductor: generated C++ on a CPU, called from its C++ wrapper; Triton
on a GPU) and replays it.

What makes a compiled pass fast on a CPU: its one-row matrix products (a one-token pass is little else) become
a multiply and a sum that inductor compiles into one vectorized, threaded loop, where the BLAS's matrix-vector
product reads the weights at a third of the speed (_few_row_product). Lab model: a one-token pass 9 ms eager,
6.4 compiled with the BLAS's products, 2.2-3.0 with these; SmolLM2-135M 62 ms eager, 21.6 compiled (2026-12-03).

What is compiled: the full model's passes after the prompt, the ones verification and plain steps take,
through the run's own cache (cache.py). The graph is traced with dynamic shapes, so one graph serves every
context length and every verify width; a pass under a tree attention mask is a second graph, a one-token
pass a third (torch specializes size 1). The prompt pass stays eager (it runs once per prompt, and it is
the one that allocates the cache). Drafting stays eager: a skip set is Python control flow in both
drafters (skipping.py, leandraft.py), and a graph per skip set would recompile at every search step.

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
from torch._decomp.decompositions import pw_cast_for_opmath
from torch._dynamo.utils import counters
from torch._inductor.compile_fx import compile_fx
from torch._inductor.decomposition import select_decomp_table
from torch.fx.experimental.symbolic_shapes import statically_known_true
from tqdm.auto import tqdm

from ..models.adapters import input_device
from ..support.errors import SwiftlabError
from .cache import SkipAwareCache
from .tree import DraftTree, tree_mask, tree_positions

aten = torch.ops.aten

# model -> (the compiled forward, {graph kind: seconds its first call took}); the compiled forward reaches its
# model through a weak reference, so that an entry does not keep its own key alive (a compiled nn.Module holds
# its model, and a WeakKeyDictionary value that holds its key is never freed)
_COMPILED: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
GRAPHS = ("one-token", "verify", "tree")  # the kinds of pass `compile_passes` compiles
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
        held = (torch.compile(_weak_forward(model), dynamic=True, backend=_inductor(cpu)), {})
        _COMPILED[model] = held
    return held[0]


def _inductor(cpu: bool):
    """Inductor, with a decoding pass's few-row matrix products made faster on a CPU (_few_row_product)."""
    def backend(graph, example_inputs):
        # AOTAutograd's cache is keyed on the graph before decomposition, so it would hand back a graph compiled
        # without this one; inductor's own cache (the C++ compile, the slow part) sees the decomposed graph
        with torch._functorch.config.patch(enable_autograd_cache=False):
            return compile_fx(graph, example_inputs, config_patches={"cpp_wrapper": True} if cpu else None,
                              decompositions={**select_decomp_table(), aten.mm.default: _few_row_product})
    return backend


@pw_cast_for_opmath
def _few_row_product(rows: torch.Tensor, matrix: torch.Tensor, out_dtype: torch.dtype | None = None):
    """rows @ W on a CPU, for the few rows a decoding pass multiplies (measured on this machine's AMD CPU with
    MKL, 2026-12-03; benchmarks/limit.py):
    - one row: (x.T * W).sum(0). Inductor makes that one vectorized, threaded loop over W, which reads the
      weights ~3x faster than the BLAS's matrix-vector product (7 GB/s against 24 from memory, 60-90 from
      the cache). A one-token pass is little else.
    - more rows than W has columns: (W.T @ rows.T).T, the same BLAS product taken the other way round,
      which its kernels do 1.3-4x faster for 2-8 rows and as fast for 16 (smallbatch.py: the same choice
      for eager passes, timed there). With more rows the multiply-and-sum loop would read W once per row.
    The verify graph's width is symbolic (it serves every width): it is taken the other way round too."""
    if rows.device.type != "cpu" or out_dtype is not None:
        return NotImplemented
    few, columns = rows.shape[0], matrix.shape[1]
    if statically_known_true(few == 1):
        counters["inductor"]["one_row_product"] += 1
        return (rows.unsqueeze(2) * matrix.unsqueeze(0)).sum(dim=1)
    # (the product taken the other way round comes back here with an int row count: it stays the BLAS's)
    if isinstance(few, torch.SymInt) or (isinstance(columns, int) and few < columns):
        counters["inductor"]["few_row_product"] += 1
        return torch.mm(matrix.t(), rows.t()).t()
    return NotImplemented


def _weak_forward(model: nn.Module):
    """A function calling the model (its __call__, hooks included) that does not keep it alive."""
    model_ref = weakref.ref(model)

    def forward(**inputs):
        return model_ref()(**inputs)
    return forward


def compile_seconds(model: nn.Module) -> dict:
    """Seconds the first call of each compiled graph took for this model ({} before compile_passes)."""
    held = _COMPILED.get(model)
    return dict(held[1]) if held else {}


def compile_passes(model: nn.Module, tree: bool = True, progress: bool = True) -> dict:
    """Compile the model's full-model passes now (a one-token pass, a verify pass, and with `tree` one under a
    tree mask) on a scratch cache, with a progress bar; {graph kind: seconds}. Graphs compiled before are
    not compiled again (their seconds are the ones measured then)."""
    if any(SkipAwareCache(model.config).is_sliding):
        # measured on a tiny Gemma 2: tokens right, but 5 graphs more than three over 12 short runs
        raise SwiftlabError(f"compile=True: {type(model).__name__} has sliding-window attention layers, whose cache "
                            "changes shape as the window slides, so its passes would compile again and again; "
                            "decode it without compile")
    forward = compiled_forward(model)
    seconds = _COMPILED[model][1]
    wanted = [g for g in GRAPHS if g not in seconds and (tree or g != "tree")]
    if not wanted:
        return compile_seconds(model)
    device = input_device(model)
    vocab = model.get_input_embeddings().num_embeddings
    # sizes unlike a model's own (head counts, head size): a traced size equal to one of those can be fixed
    # in the graph (a guard on it) and any other value compiles again
    cache = SkipAwareCache(model.config, rollback=False, capacity=CAPACITY)
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
            # called exactly as DecodeSession.forward calls it: other arguments would be other graphs
            if kind == "tree":
                draft = DraftTree(chain=[3, 4, 5, 6], siblings=[[7, 8], [], [], []])  # WIDTH with the pending token
                tokens, positions = torch.tensor([[2] + draft.tokens()], device=device), tree_positions(draft, n, device)
                mask = tree_mask(draft, n, additive_dtype=additive, device=device)
            else:
                # a new tensor, as a run's: a slice's strides would be another guard
                tokens = torch.tensor([ids[0, n:n + (1 if kind == "one-token" else WIDTH)].tolist()], device=device)
                positions, mask = torch.arange(n, n + tokens.shape[1], device=device).unsqueeze(0), None
            forward(input_ids=tokens, position_ids=positions, attention_mask=mask, cache=cache, use_cache=True)
            seconds[kind] = time.perf_counter() - t0
            cache.crop_to(PROMPT)
            bar.update(1)
        bar.set_postfix_str(", ".join(f"{k} {s:.0f} s" for k, s in seconds.items()))
    return compile_seconds(model)
