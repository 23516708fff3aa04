"""A lean one-token forward pass for drafting, for decoders built like Llama.

Why it exists: a draft pass feeds one token through the model with some sub-layers off. At the lab
model's size (16 layers, width 192) reading a layer's matrices takes tens of microseconds, and
transformers' per-call machinery (mask building, rotary embedding, attention dispatch, skip
overrides that still run the norms, output objects) costs as much again. Here a draft pass is
the bare arithmetic: per kept sub-layer one fused RMSNorm, its projections, and the residual add;
a skipped sub-layer costs nothing at all. Measured with benchmarks/step_costs.py: a draft pass at
skip ratio 0.45 drops from ~0.7 to ~0.45 of a full transformers pass.

Correctness does not depend on this file: verification still runs the model itself, so the output
is the full model's whatever the drafter says. It only has to be the same drafter, and it is: the
same weights and the same operations in a different order, equal to transformers' skipping pass to
float rounding (tests/test_leandraft.py). It copies no weights and holds only views of the model's
own tensors; the KV entries it writes go into the same cache, through the cache's own `update`.

Which models qualify is the adapter's call (`Adapter.lean_draft`); anything else drafts through
transformers with `skipping(...)`, exactly as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .adapters import adapter_for
from .skipset import SkipSet

# rotary variants whose angles depend on the position only (not on the sequence length seen so far)
_STATIC_ROPE = {"default", "linear", "llama3"}
_ROPE_BLOCK = 256  # positions whose angles are computed together


def _linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    return F.linear(x, layer.weight, layer.bias)


def _add_linear(residual: torch.Tensor, x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """residual + layer(x), in one call when there is no bias."""
    if layer.bias is None:
        return torch.addmm(residual, x, layer.weight.t())
    return residual + _linear(x, layer)


def lean_drafter(model: nn.Module, cache) -> "LeanDrafter | None":
    """A LeanDrafter for `model`, or None when the model must draft through transformers."""
    if not adapter_for(model).lean_draft:
        return None
    inner = getattr(model, "model", None)
    rotary = getattr(inner, "rotary_emb", None)
    if rotary is None or getattr(rotary, "rope_type", "default") not in _STATIC_ROPE:
        return None
    if any(cache.is_sliding):  # windowed layers need their own masks: leave them to transformers
        return None
    if any(hasattr(m, "_hf_hook") for m in model.modules()):  # accelerate offloading/dispatch hooks
        return None
    if getattr(model.config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        return None
    return LeanDrafter(model)


class _Layer:
    """Plain references to one decoder layer's tensors (views, no copies)."""

    def __init__(self, layer: nn.Module):
        attn, mlp = layer.self_attn, layer.mlp
        self.q, self.k, self.v, self.o = attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj
        self.gate, self.up, self.down = mlp.gate_proj, mlp.up_proj, mlp.down_proj
        self.act = mlp.act_fn
        self.norm1, self.norm2 = layer.input_layernorm, layer.post_attention_layernorm
        self.scale = attn.scaling


class LeanDrafter:
    def __init__(self, model: nn.Module):
        inner = model.model
        config = model.config
        self.embed = inner.embed_tokens.weight
        self.final_norm = inner.norm
        self.lm_head = model.get_output_embeddings().weight
        self.rotary = inner.rotary_emb
        self.layers = [_Layer(layer) for layer in inner.layers]
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

    def _rope_matrix(self, position: int) -> torch.Tensor:
        """x * cos + rotate_half(x) * sin as one matrix product, x @ M, built once per token for all layers.
        The angles come from the model's own rotary module, a block of positions at a time."""
        block, offset = divmod(position, _ROPE_BLOCK)
        if block not in self._angles:
            positions = torch.arange(block * _ROPE_BLOCK, (block + 1) * _ROPE_BLOCK, device=self.embed.device)
            cos, sin = self.rotary(self.embed[:1], positions.unsqueeze(0))
            self._angles[block] = (cos[0], sin[0])
        cos, sin = self._angles[block]
        return torch.diag(cos[offset]) + self.rotate * sin[offset]

    def _norm(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (self.width,), norm.weight, norm.variance_epsilon)

    def logits(self, token: int, position: int, cache, skip_set: SkipSet) -> torch.Tensor:
        """Logits [vocab] for `token` at `position`, with skip_set's sub-layers off; appends the kept
        attention layers' KV for this position to `cache`, as a transformers pass would."""
        x = self.embed[token:token + 1]  # [1, width]
        rope = self._rope_matrix(position)
        H, KV, D = self.heads, self.kv_heads, self.head_dim
        skip_attention, skip_mlp = set(skip_set.attention), set(skip_set.mlp)
        for i, w in enumerate(self.layers):
            if i not in skip_attention:
                h = self._norm(w.norm1, x)
                q = _linear(h, w.q).view(H, D) @ rope
                k = _linear(h, w.k).view(KV, D) @ rope
                v = _linear(h, w.v)
                keys, values = cache.update(k.view(1, KV, 1, D), v.view(1, KV, 1, D), i)
                out = F.scaled_dot_product_attention(q.view(1, H, 1, D), keys, values, scale=w.scale,
                                                     enable_gqa=H != KV)
                x = _add_linear(x, out.view(1, H * D), w.o)
            if i not in skip_mlp:
                h = self._norm(w.norm2, x)
                x = _add_linear(x, w.act(_linear(h, w.gate)) * _linear(h, w.up), w.down)
        return F.linear(self._norm(self.final_norm, x), self.lm_head)[0]
