"""A lean one-token forward pass for drafting, for decoders built like Llama.

Why it exists: a draft pass feeds one token through the model with some sub-layers off. At the lab
model's size (16 layers, width 192) reading a layer's matrices takes tens of microseconds, and
transformers' per-call machinery (mask building, rotary embedding, attention dispatch, skip
overrides that still run the norms, output objects) costs as much again. Here a draft pass is
the bare arithmetic: per kept sub-layer one fused RMSNorm, its projections, and the residual add;
a skipped sub-layer costs nothing at all. Measured with benchmarks/step_costs.py: a draft pass at
skip ratio 0.45 drops from ~0.7 to ~0.45 of a full transformers pass.

Correctness does not depend on this file: verification still runs the model itself, so the output
is the full model's whatever the drafter says. In the model's own precision it is the same drafter:
the same weights and the same operations in a different order, equal to transformers' skipping
pass to float rounding (tests/test_leandraft.py), holding only views of the model's own tensors.

Precision (`draft_dtype`): the pass is bound by reading the matrices, so a float32 model drafts
much faster from a float16 copy of them (lab model, r=0.45: ~0.25 instead of ~0.44 of a full pass;
the lab model ships in float16, so the copy is its trained weights exactly). The copy costs half the
float32 matrices' memory again, so "auto" makes it only where that is small against the process
(5% of resident memory: a small model on a CPU); larger float32 models draft from their own tensors.
The residual stream, attention and KV entries stay in the model's precision; a copy that overflows
(inf/nan logits) is dropped for the model's own tensors and the token is redone.
The KV entries a draft writes go into the same cache, through the cache's own `update`, and are
dropped before verification.

Which models qualify, and where their modules are, is the adapter's call (`Adapter.lean`, adapters.py):
nothing here names a family's modules. Anything else drafts through transformers with `skipping(...)`.
"""

from __future__ import annotations

import os
import warnings
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from ..models.adapters import LeanParts, adapter_for, dispatched
from ..support.errors import SwiftlabError
from .compileddraft import CompiledDraft
from .skipset import SkipSet

# rotary variants whose angles depend on the position only (not on the sequence length seen so far)
_STATIC_ROPE = {"default", "linear", "llama3"}
_ROPE_BLOCK = 256  # positions whose angles are computed together


# "auto" drafts from a float16 copy of a float32 model's matrices when the copy is this small a share of
# the process's resident memory (the memory target is 1.1x autoregressive decoding's peak)
_COPY_SHARE = 0.05
DRAFT_DTYPES = ("auto", "model", "float16", "bfloat16")


def lean_drafter(model: nn.Module, cache, dtype: str = "model", compiled: bool = False) -> "LeanDrafter | None":
    """A LeanDrafter for `model`, or None when the model must draft through transformers.
    `dtype` is the precision of the draft matrices (DRAFT_DTYPES; see draft_dtype); `compiled`: its pass
    compiled (compileddraft.py)."""
    adapter = adapter_for(model)
    if not adapter.lean_draft:
        return None
    rotary = adapter.rotary(model)
    if rotary is None or getattr(rotary, "rope_type", "default") not in _STATIC_ROPE:
        return None
    if any(cache.is_sliding):  # windowed layers need their own masks: leave them to transformers
        return None
    if dispatched(model):  # accelerate's hooks move (or fetch from disk) each module's weights as it runs
        return None
    if getattr(model.config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        return None
    return LeanDrafter(model, draft_dtype(model, dtype), compiled=compiled)


_STEP_ASIDE_SHOWN: set[str] = set()


def note_step_aside(model: nn.Module) -> None:
    """Say once (per model class) that a model spread by accelerate drafts through transformers: the lean pass
    reads every weight itself, and an offloaded weight waits on the meta device until its module's hook fetches it."""
    name = type(model).__name__
    if name not in _STEP_ASIDE_SHOWN and adapter_for(model).lean_draft and dispatched(model):
        _STEP_ASIDE_SHOWN.add(name)
        warnings.warn(f"{name} is spread by accelerate (device_map): SWIFT drafts through transformers instead of "
                      "the lean drafter (same output, slower drafts)", stacklevel=3)


def draft_dtype(model: nn.Module, choice: str) -> torch.dtype:
    """The dtype the drafter's matrices are read in. "model": the model's own tensors, no copy.
    "float16"/"bfloat16": a copy in that precision when the model computes in another (a pass here is
    bound by reading the matrices; see the module docstring and benchmarks/step_costs.py). "auto": a float16 copy of a
    float32 model when it is small against the process's memory (small models on a CPU), else none."""
    check_draft_dtype(choice)
    own = model.get_output_embeddings().weight.dtype
    if choice == "model":
        return own
    if choice != "auto":
        return getattr(torch, choice)
    if own != torch.float32 or model in _OVERFLOWED:
        return own
    copy_bytes = sum(lin.weight.numel() * 2 for lin in _matrices(model))
    resident = resident_bytes()
    return torch.float16 if resident and copy_bytes <= _COPY_SHARE * resident else own


def check_draft_dtype(choice: str) -> None:
    """Raise a SwiftlabError unless `choice` is one of DRAFT_DTYPES ("auto", "model", "float16",
    "bfloat16")."""
    if choice not in DRAFT_DTYPES:
        raise SwiftlabError(f"unknown draft dtype {choice!r}: choose one of {', '.join(DRAFT_DTYPES)}")


def resident_bytes() -> int | None:
    """This process's resident memory now, in bytes (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _parts(model: nn.Module) -> list[LeanParts]:
    adapter = adapter_for(model)
    return [adapter.lean_parts(layer) for layer in adapter.layers(model)]


def _matrices(model: nn.Module) -> list[nn.Linear]:
    """The linears a draft pass reads: every layer's projections and the output head."""
    out = []
    for parts in _parts(model):
        out += [*parts.attention_in, parts.attention_out, *parts.mlp_in, parts.mlp_out]
    return out + [model.get_output_embeddings()]


class _Matrix:
    """One or more linears read as one matrix in the draft dtype: outputs come back in the residual
    stream's dtype, split per linear. The model's own tensors when the dtype is theirs (views, no copy);
    otherwise one concatenated copy (q/k/v and gate/up each become a single product)."""

    def __init__(self, linears: list[nn.Linear], dtype: torch.dtype):
        self.sizes = [lin.out_features for lin in linears]
        if linears[0].weight.dtype == dtype:
            self.parts = [(lin.weight, lin.bias) for lin in linears]
        else:
            biases = [lin.bias for lin in linears]
            bias = None if biases[0] is None else torch.cat(biases).to(dtype)
            self.parts = [(torch.cat([lin.weight.detach() for lin in linears]).to(dtype), bias)]
        self.dtype = dtype

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if len(self.parts) > 1:
            return [F.linear(x, w, b) for w, b in self.parts]
        w, b = self.parts[0]
        return list(F.linear(x.to(self.dtype), w, b).to(x.dtype).split(self.sizes, dim=-1))

    def add(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """residual + self(x), in one call when the matrix is the model's own and has no bias."""
        w, b = self.parts[0]
        if b is None and w.dtype == residual.dtype:
            return torch.addmm(residual, x, w.t())
        return residual + self(x)[0]


class _Layer:
    """One decoder layer's matrices (see _Matrix) and plain references to its norms and activation."""

    def __init__(self, parts: LeanParts, dtype: torch.dtype):
        self.qkv = _Matrix(parts.attention_in, dtype)
        self.o = _Matrix([parts.attention_out], dtype)
        self.gate_up = _Matrix(parts.mlp_in, dtype)
        self.down = _Matrix([parts.mlp_out], dtype)
        self.act = parts.activation
        self.norm1, self.norm2 = parts.norms
        self.scale = parts.scale


# model -> (what its matrices were when read, [_Layer], lm_head): a copy is made once per model, not per
# decode (~10 ms for the lab model), and made again when a weight changes (training bumps `_version`,
# loading or moving the model replaces the storage)
_READ: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
_OVERFLOWED: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()  # models whose float16 copy overflowed: "auto" copies no more


def _read_matrices(model: nn.Module, dtype: torch.dtype) -> tuple[list[_Layer], _Matrix]:
    stamp = (dtype, tuple((lin.weight.data_ptr(), lin.weight._version) for lin in _matrices(model)))
    held = _READ.get(model)
    if held is None or held[0] != stamp:
        held = (stamp, [_Layer(parts, dtype) for parts in _parts(model)],
                _Matrix([model.get_output_embeddings()], dtype))
        _READ[model] = held
    return held[1], held[2]


class LeanDrafter:
    """The lean draft pass for one Llama-like model; make it with `lean_drafter`, which checks that the
    model qualifies. Its matrices are read in `dtype` (None: the model's own tensors, no copy); `logits` drafts one
    token with a skip set's sub-layers left out. With `compiled`, on a CPU, the pass runs as one compiled graph
    (compileddraft.py) wherever the cache allows it (preallocated, its layers level), else as here."""
    def __init__(self, model: nn.Module, dtype: torch.dtype | None = None, compiled: bool = False):
        adapter, config = adapter_for(model), model.config
        self.model = model
        self.embed = model.get_input_embeddings().weight
        self.final_norm = adapter.final_norm(model)
        self.rotary = adapter.rotary(model)
        self.width = config.hidden_size
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or self.width // self.heads
        # rotate_half(x) as a matrix, x @ R: the first half becomes -(second half), the second the first
        d, h = self.head_dim, self.head_dim // 2
        rotate = torch.zeros(d, d, dtype=self.embed.dtype, device=self.embed.device)
        rotate[torch.arange(h) + h, torch.arange(h)] = -1.0
        rotate[torch.arange(h), torch.arange(h) + h] = 1.0
        self.rotate = rotate
        self._angles: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._use(dtype or self.embed.dtype)
        # compiled where it was measured: on a CPU (a GPU's graph would want its flags on the host and CUDA graphs
        # around the branches, both untried)
        self.compiled = CompiledDraft(self) if compiled and self.embed.device.type == "cpu" else None

    def _use(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.layers, self.lm_head = _read_matrices(self.model, dtype)

    def angles(self, position: int) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
        """The rotary cos and sin [_ROPE_BLOCK, head size] of the block of positions holding `position`, and its
        row there. They come from the model's own rotary module, a block of positions at a time."""
        block, offset = divmod(position, _ROPE_BLOCK)
        if block not in self._angles:
            positions = torch.arange(block * _ROPE_BLOCK, (block + 1) * _ROPE_BLOCK, device=self.embed.device)
            cos, sin = self.rotary(self.embed[:1], positions.unsqueeze(0))
            self._angles[block] = (cos[0], sin[0])
        return self._angles[block], offset

    def _rope_matrix(self, position: int) -> torch.Tensor:
        """x * cos + rotate_half(x) * sin as one matrix product, x @ M, built once per token for all layers."""
        (cos, sin), offset = self.angles(position)
        return torch.diag(cos[offset]) + self.rotate * sin[offset]

    def _norm(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (self.width,), norm.weight, norm.variance_epsilon)

    def logits(self, token: int, position: int, cache, skip_set: SkipSet) -> torch.Tensor:
        """Logits [vocab] for `token` at `position`, with skip_set's sub-layers off; appends the kept
        attention layers' KV for this position to `cache`, as a transformers pass would."""
        logits = self._pass(token, position, cache, skip_set)
        if self.dtype != self.embed.dtype and not bool(torch.isfinite(logits).all()):
            # a reduced-precision copy overflowed on this model: redo the token with the model's own
            # tensors and keep drafting with them (a draft of inf/nan would be rejected, or break sampling)
            cache.crop_to(position)
            _OVERFLOWED.add(self.model)
            self._use(self.embed.dtype)
            self.compiled = None  # a graph for the model's own precision would be another compile
            logits = self._pass(token, position, cache, skip_set)
        return logits

    def _pass(self, token: int, position: int, cache, skip_set: SkipSet) -> torch.Tensor:
        if self.compiled is not None:
            logits = self.compiled.logits(token, position, cache, skip_set)
            if logits is not None:
                return logits
        x = self.embed[token:token + 1]  # [1, width], the residual stream stays in the model's dtype
        rope = self._rope_matrix(position)
        H, KV, D = self.heads, self.kv_heads, self.head_dim
        skip_attention, skip_mlp = set(skip_set.attention), set(skip_set.mlp)
        for i, w in enumerate(self.layers):
            if i not in skip_attention:
                q, k, v = w.qkv(self._norm(w.norm1, x))
                q, k = q.view(H, D) @ rope, k.view(KV, D) @ rope
                keys, values = cache.update(k.view(1, KV, 1, D), v.view(1, KV, 1, D), i)
                out = F.scaled_dot_product_attention(q.view(1, H, 1, D), keys, values, scale=w.scale,
                                                     enable_gqa=H != KV)
                x = w.o.add(x, out.view(1, H * D))
            if i not in skip_mlp:
                gate, up = w.gate_up(self._norm(w.norm2, x))
                x = w.down.add(x, w.act(gate) * up)
        return self.lm_head(self._norm(self.final_norm, x))[0][0]
