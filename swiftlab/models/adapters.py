"""The one place that knows model families.

SWIFT switches individual attention and MLP sub-layers off. Every decoder-only family in
transformers computes `h = h + attn(norm(h))` and `h = h + mlp(norm(h))` (GPT-NeoX in parallel,
Gemma with an extra post-norm), so a sub-layer that returns zeros leaves the residual stream
untouched: that is a skipped sub-layer. An adapter only has to say where the decoder layers live,
which modules are a layer's attention and MLP, and what "zeros" look like for each module's
return value. Nothing outside this file names a family.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn

from ..support.errors import SwiftlabError

# A skip function receives the (args, kwargs) the module was called with and returns what the
# module would have returned, with the sub-layer's contribution to the residual stream zeroed.
SkipFn = Callable[[tuple, dict], object]


def _hidden_states(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def zeros_like_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """An MLP's output: same shape as its input."""
    return torch.zeros_like(_hidden_states(args, kwargs))


def zeros_and_no_weights(args: tuple, kwargs: dict) -> tuple[torch.Tensor, None]:
    """An attention module's output in transformers 5: (attn_output, attn_weights)."""
    return torch.zeros_like(_hidden_states(args, kwargs)), None


def no_features(args: tuple, kwargs: dict) -> torch.Tensor:
    """For MLPs written inline as fc1 -> act -> fc2 (OPT): fc1 yields an empty feature axis ..."""
    return _hidden_states(args, kwargs)[..., :0]


def _zeros_with_width(width: int) -> SkipFn:
    """... and fc2 turns it into zeros of the model width, so the residual add is a no-op."""

    def skip(args: tuple, kwargs: dict) -> torch.Tensor:
        x = _hidden_states(args, kwargs)
        return x.new_zeros(*x.shape[:-1], width)

    return skip


@dataclass(frozen=True)
class LeanNames:
    """Where a decoder layer built exactly like Llama's (RMSNorm, q/k/v/o projections with rotary, gated
    MLP) keeps what leandraft.py's lean draft pass reads: attribute names below the layer's attention
    and MLP modules, and the rotary module's path from the CausalLM."""

    attention_in: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")
    attention_out: str = "o_proj"
    mlp_in: tuple[str, ...] = ("gate_proj", "up_proj")  # the gate, then the up projection
    mlp_out: str = "down_proj"
    activation: str = "act_fn"
    norms: tuple[str, str] = ("input_layernorm", "post_attention_layernorm")  # before attention, before the MLP
    rotary_path: str = "model.rotary_emb"


class LeanParts(NamedTuple):
    """One decoder layer's modules, as leandraft.py reads them."""

    attention_in: list[nn.Linear]
    attention_out: nn.Linear
    mlp_in: list[nn.Linear]
    mlp_out: nn.Linear
    activation: Callable
    norms: tuple[nn.Module, nn.Module]
    scale: float  # the attention's softmax scale


def _at(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Adapter:
    """Where one family keeps its decoder layers and sub-layers."""

    family: str
    layers_path: str  # dotted attribute path from the CausalLM to the nn.ModuleList of layers
    attention_name: str  # attribute of a decoder layer
    mlp_names: tuple[str, ...] = ("mlp",)  # one module, or OPT's ("fc1", "fc2")
    final_norm_path: str = "model.norm"  # the norm between the last layer and the output head
    lean: LeanNames | None = None  # exactly Llama's layer: leandraft.py can draft it (see LeanNames)

    @property
    def lean_draft(self) -> bool:
        return self.lean is not None

    def final_norm(self, model: nn.Module) -> nn.Module:
        """The final norm (a logit lens applies it, then the output head, to any residual stream)."""
        return _at(model, self.final_norm_path)

    def layers(self, model: nn.Module) -> nn.ModuleList:
        """The model's nn.ModuleList of decoder layers (at `layers_path`)."""
        return _at(model, self.layers_path)

    def lean_parts(self, layer: nn.Module) -> LeanParts:
        """The modules of `layer` that leandraft.py reads, found by the family's LeanNames; only for a
        family with `lean_draft` (an AttributeError on one without)."""
        names, attention, mlp = self.lean, getattr(layer, self.attention_name), getattr(layer, self.mlp_names[0])
        return LeanParts([getattr(attention, n) for n in names.attention_in], getattr(attention, names.attention_out),
                         [getattr(mlp, n) for n in names.mlp_in], getattr(mlp, names.mlp_out),
                         getattr(mlp, names.activation), tuple(getattr(layer, n) for n in names.norms),
                         attention.scaling)

    def rotary(self, model: nn.Module) -> nn.Module | None:
        """The rotary-embedding module of a lean-drafted family, or None where it is not there."""
        try:
            return _at(model, self.lean.rotary_path)
        except AttributeError:
            return None

    def whole_layer_skippable(self, model: nn.Module) -> bool:
        """With both sub-layers off, is the decoder layer the identity on the residual stream?
        Pre-norm layers are; OPT's post-norm variant (do_layer_norm_before=False) still normalizes."""
        return getattr(model.config, "do_layer_norm_before", True)

    def attention_parts(self, layer: nn.Module) -> list[tuple[nn.Module, SkipFn]]:
        """(module, skip function) pairs that switch `layer`'s attention off: the attention
        module, returning zeros and no attention weights."""
        return [(getattr(layer, self.attention_name), zeros_and_no_weights)]

    def mlp_parts(self, layer: nn.Module) -> list[tuple[nn.Module, SkipFn]]:
        """(module, skip function) pairs that switch `layer`'s MLP off: the MLP returning zeros, or OPT's
        inline fc1 and fc2 (an empty feature axis, then zeros of the model width). The last pair's module is the one
        whose output joins the residual stream."""
        if len(self.mlp_names) == 1:
            return [(getattr(layer, self.mlp_names[0]), zeros_like_input)]
        first, last = (getattr(layer, name) for name in self.mlp_names)
        return [(first, no_features), (last, _zeros_with_width(last.out_features))]


_LLAMA_LIKE = dict(layers_path="model.layers", attention_name="self_attn")

# model_type (config.model_type) -> adapter. Every entry is exercised by tests/test_families.py.
ADAPTERS: dict[str, Adapter] = {
    name: Adapter(family=name, **_LLAMA_LIKE)
    for name in (
        "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text",
        "phi3", "phi", "olmo", "olmo2", "granite", "stablelm", "starcoder2",
    )
}
for name in ("llama", "mistral", "qwen2"):
    ADAPTERS[name] = Adapter(family=name, lean=LeanNames(), **_LLAMA_LIKE)
ADAPTERS["phi"] = Adapter(family="phi", final_norm_path="model.final_layernorm", **_LLAMA_LIKE)
ADAPTERS["gpt2"] = Adapter("gpt2", layers_path="transformer.h", attention_name="attn", final_norm_path="transformer.ln_f")
ADAPTERS["gpt_neox"] = Adapter("gpt_neox", layers_path="gpt_neox.layers", attention_name="attention",
                               final_norm_path="gpt_neox.final_layer_norm")
ADAPTERS["opt"] = Adapter("opt", layers_path="model.decoder.layers", attention_name="self_attn",
                          mlp_names=("fc1", "fc2"), final_norm_path="model.decoder.final_layer_norm")


def check_supported(config) -> Adapter:
    """The adapter for a model config, or a clear error that says how to add one."""
    model_type = getattr(config, "model_type", None)
    if model_type in ADAPTERS:
        return ADAPTERS[model_type]
    arch = ", ".join(getattr(config, "architectures", None) or []) or type(config).__name__
    raise SwiftlabError(
        f"unsupported architecture {arch} (model_type {model_type!r}); supported: "
        f"{', '.join(sorted(ADAPTERS))}. To add it, register an Adapter in swiftlab/models/adapters.py "
        "naming its decoder-layer list and its attention and MLP modules"
    )


def adapter_for(model: nn.Module) -> Adapter:
    """The Adapter of `model`'s family, by its config's model_type; a SwiftlabError for an unsupported one."""
    return check_supported(getattr(model, "config", None))


def num_layers(model: nn.Module) -> int:
    """How many decoder layers `model` has: the L a skip set for it must name."""
    return len(adapter_for(model).layers(model))


def dispatched(model: nn.Module) -> bool:
    """Is the model spread by accelerate (a `device_map` load putting layers on several devices, or offloading
    them to CPU or disk; a map onto one device installs no hooks)? Its modules then carry hooks (`_hf_hook`,
    an instance `forward`) that move weights and activations as each module runs, and an offloaded module's
    parameters wait on the meta device between calls."""
    return any(hasattr(m, "_hf_hook") for m in model.modules())


def input_device(model: nn.Module) -> torch.device:
    """The device a pass's inputs (token ids, positions, masks) go to, and where its logits come back: where
    the input embedding runs. That is its weight's device, except under accelerate's dispatch, where an
    offloaded embedding's weight waits on the meta device and its hook names the device it runs on."""
    embedding = model.get_input_embeddings()
    hook = getattr(embedding, "_hf_hook", None)
    for each in getattr(hook, "hooks", (hook,)):  # a SequentialHook holds several
        device = getattr(each, "execution_device", None)
        if device is not None:
            return torch.device(device)
    device = embedding.weight.device
    if device.type == "meta":
        raise SwiftlabError("the model's input embedding has no weights (meta device) and no accelerate hook "
                            "to load them: load the model with swiftlab.load_model or from_pretrained")
    return device


def last_logits_only(model: nn.Module) -> dict:
    """Forward keywords that make a pass compute the logits of its last position only, where the
    model takes them: a prompt pass needs one token's logits, and the output head over every prompt
    position is a fifth of its time on a model with a large vocabulary (SmolLM2-135M: 49152 words).
    transformers' generate does the same."""
    return {"logits_to_keep": 1} if _takes_logits_to_keep(type(model)) else {}


@functools.cache
def _takes_logits_to_keep(model_class: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def eos_ids(model: nn.Module) -> set[int]:
    """The token ids that end the text: the generation config's eos_token_id (one or a list), else the model
    config's; an empty set where neither names one."""
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    if eos is None:
        eos = getattr(model.config, "eos_token_id", None)
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}
