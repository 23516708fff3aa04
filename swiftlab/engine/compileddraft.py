"""The lean draft pass, compiled: what `SwiftParams(compile=True)` drafts with where a lean drafter exists.

Why: beside a compiled full pass (compiled.py) an eager draft pass costs about what the full pass it should
undercut costs (lab model, skip ratio 0.45: 0.7-1.0 of a compiled full pass), so drafting cannot pay. Compiled
as one graph it costs 0.42 of one from the float16 copy, 0.54 from the model's float32 tensors
(benchmarks/step_costs.py --compile, 2026-12-04); with every sub-layer skipped it still costs ~1 ms, the
graph's floor (guards on its ~180 inputs, each layer's KV write and rotation, the head).

One graph serves every skip set: the skip set is data, a bool tensor per sub-layer, and each sub-layer sits
in a `torch.cond` on its flag, so the search changing the set at every step compiles nothing again, and a
skipped sub-layer's branch reads none of its weights. One graph serves every context length too: the
keys and values come in as views whose length is marked dynamic.

Every layer's KV slot at the draft position is written, a skipped attention layer's with zeros, and every
layer moves on together (SkipAwareCache.draft_slot). Nothing reads a skipped layer's slot while it is
skipped (a draft step drafts under one skip set), and the draft's positions are cropped before
verification, which writes them all again.

On a CPU only, where it was measured: on a GPU drafts stay eager (a graph there would want its flags on the
host and CUDA graphs around the branches; untried).

Two choices measured in torch 2.13 on this CPU:
- attention is written out (q K^T, softmax, @ V): for one query inductor fuses it into loops over the
  keys, where SDPA's CPU kernel took ~40 us a layer at a few hundred positions;
- each flag is a tensor of its own: inductor's C++ wrapper (inductor.py) reads a torch.cond flag from the
  start of its storage, so flags that were rows of one tensor all read the first (lab model: logits off by
  4.4; with a tensor each they match the eager pass to 0.005).
"""

from __future__ import annotations

import time
import warnings
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from .guards import lightly_guarded, with_own_code
from .inductor import inductor
from .skipset import SkipSet

# model -> {draft dtype: the compiled draft pass}, each its own code object and so its own dynamo cache
_DRAFTS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


class CompiledDraft:
    """A LeanDrafter's pass as one compiled graph (see the module docstring): `logits` or None where the cache
    cannot take a compiled pass (then the caller drafts eagerly)."""

    def __init__(self, lean):
        self.lean = lean
        self.weights = [_layer_weights(w) for w in lean.layers]
        self.final = (_weight(lean.final_norm.weight), _parts(lean.lm_head))
        self.embed = _weight(lean.embed)
        self.graph = _compiled(lean)
        self._keep: dict[SkipSet, list] = {}

    def logits(self, token: int, position: int, cache, skip_set: SkipSet) -> torch.Tensor | None:
        """Logits [vocab] for `token` at `position` with skip_set's sub-layers off, every layer's KV slot at
        `position` written; None, the cache untouched, where it is not preallocated and level at `position`."""
        slots = None if self.graph.failed else cache.draft_slot(position)
        if slots is None:
            return None
        keys, values = slots
        for t in keys + values:
            torch._dynamo.maybe_mark_dynamic(t, 2)
        lean = self.lean
        block, offset = lean.angles(position)
        index = torch.tensor([token, offset], device=lean.embed.device)
        try:
            return self.graph(index, self.embed, *block, self._flags(skip_set), self.weights, keys, values,
                              self.final)
        except Exception as error:
            if self.graph.seconds is not None:  # it compiled and ran before: not the compile failing
                raise
            # a model the graph does not compile for still drafts, eagerly, and says so once
            cache.crop_to(position)
            lean.compiled = None
            if not self.graph.failed:
                self.graph.failed = True
                warnings.warn(f"the compiled draft pass did not compile for {type(lean.model).__name__} "
                              f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                              "drafting eagerly", stacklevel=4)
            return None

    def _flags(self, skip_set: SkipSet) -> list[list[torch.Tensor]]:
        """Per layer [attention, MLP] one-element bool tensors, True where the sub-layer runs; kept per skip set
        (a search revisits its sets)."""
        flags = self._keep.get(skip_set)
        if flags is None:
            off = (set(skip_set.attention), set(skip_set.mlp))
            flags = [[torch.tensor(i not in off[kind]) for kind in (0, 1)] for i in range(skip_set.num_layers)]
            if len(self._keep) > 256:
                self._keep.clear()
            self._keep[skip_set] = flags
        return flags


def _weight(t: torch.Tensor) -> nn.Parameter:
    """A weight as the graph takes it: an nn.Parameter over the same storage that does not require grad (an
    input that requires grad is another graph; a parameter's guards are among those guards.py skips)."""
    return nn.Parameter(t.detach(), requires_grad=False)


def _parts(matrix) -> list:
    """A leandraft _Matrix's (weight, bias) pairs."""
    return [(_weight(w), None if b is None else _weight(b)) for w, b in matrix.parts]


def _layer_weights(w) -> tuple:
    return (_weight(w.norm1.weight), _parts(w.qkv), _parts(w.o), _weight(w.norm2.weight), _parts(w.gate_up),
            _parts(w.down))


def compile_seconds_of(lean) -> float | None:
    """Seconds the first call of this drafter's compiled pass took, or None before it ran."""
    return getattr(_DRAFTS.get(lean.model, {}).get(lean.dtype), "seconds", None)


def _compiled(lean):
    held = _DRAFTS.setdefault(lean.model, {})
    if lean.dtype not in held:
        backend = inductor(lean.embed.device.type == "cpu")
        held[lean.dtype] = _FirstCallTimed(torch.compile(_draft_pass(lean), backend=backend))
    return held[lean.dtype]


class _FirstCallTimed:
    """A compiled function that remembers how long its first call (the compile) took."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, None
        self.failed = False  # its first call raised: the model drafts eagerly
        self.light = True  # later calls under light guards (guards.py; compiled.py checks the model's weights)

    def __call__(self, *args):
        # dynamo's automatic dynamic shapes would make every size symbolic when this code compiles again for
        # other sizes (measured while one code object served every model; each has its own now), which
        # torch.cond does not trace: the sizes stay static, the marked context lengths alone dynamic (16 us)
        with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
            if self.seconds is not None:
                return lightly_guarded(self.fn, *args) if self.light else self.fn(*args)
            t0 = time.perf_counter()
            out = self.fn(*args)
            self.seconds = time.perf_counter() - t0
            return out




def _draft_pass(lean):
    """The pass as a function of its tensors alone, the model's sizes and constants closed over."""
    H, KV, D, width = lean.heads, lean.kv_heads, lean.head_dim, lean.width
    half = D // 2
    first = lean.layers[0]
    eps, scale, act = first.norm1.variance_epsilon, first.scale, first.act
    final_eps = lean.final_norm.variance_epsilon

    def linear(x, parts):
        outs = [F.linear(x.to(w.dtype), w, b).to(x.dtype) for w, b in parts]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)

    def rotated(t, cos, sin):  # t * cos + rotate_half(t) * sin, for [heads, D]
        return t * cos + torch.cat([-t[:, half:], t[:, :half]], dim=-1) * sin

    def attention_in(x, norm, qkv):
        # one output, the product itself: a torch.cond branch must return dense tensors that alias nothing
        return linear(F.rms_norm(x, (width,), norm, eps), qkv)

    def no_attention_in(x, norm, qkv):
        return x.new_zeros(1, (H + 2 * KV) * D)

    def attention_out(x, q, keys, values, o):
        keys, values = keys[0], values[0]  # [KV, positions, D]
        q = q.view(KV, H // KV, D)  # grouped queries: H // KV query heads read each KV head
        weights = torch.softmax((q @ keys.transpose(-1, -2)) * scale, dim=-1)
        return x + linear((weights @ values).reshape(1, H * D), o)

    def no_attention_out(x, q, keys, values, o):
        return x.clone()

    def mlp(x, norm, gate_up, down):
        gate, up = linear(F.rms_norm(x, (width,), norm, eps), gate_up).chunk(2, dim=-1)
        return x + linear(act(gate) * up, down)

    def no_mlp(x, norm, gate_up, down):
        return x.clone()

    def draft_pass(index, embed, cos_block, sin_block, keep, layers, keys, values, final):
        x = F.embedding(index[:1], embed)  # [1, width]
        cos, sin = cos_block.index_select(0, index[1:]), sin_block.index_select(0, index[1:])  # [1, D]
        for i, (norm1, qkv, o, norm2, gate_up, down) in enumerate(layers):
            q, k, v = torch.cond(keep[i][0], attention_in, no_attention_in, (x, norm1, qkv)).split(
                [H * D, KV * D, KV * D], dim=-1)
            q, k = rotated(q.view(H, D), cos, sin), rotated(k.view(KV, D), cos, sin)
            keys[i][:, :, -1:].copy_(k.view(1, KV, 1, D))
            values[i][:, :, -1:].copy_(v.view(1, KV, 1, D))
            x = torch.cond(keep[i][0], attention_out, no_attention_out, (x, q, keys[i], values[i], o))
            x = torch.cond(keep[i][1], mlp, no_mlp, (x, norm2, gate_up, down))
        norm, head = final
        return linear(F.rms_norm(x, (width,), norm, final_eps), head)[0]

    return with_own_code(draft_pass)
