"""Switching sub-layers off for a draft pass, and on again, without a trace.

A skipped sub-layer gets an instance-level `forward` that returns zeros (see adapters.py), so it
does no work and writes no KV-cache entries. The override exists only inside `skipping(...)`:
on exit the module's own `forward` is back, whatever happened inside. Outside the context the
model is exactly the model the user gave us: same modules, same state_dict, same outputs.

Under accelerate's dispatch (a `device_map` load) a module's instance `forward` is its hook's: the
override sets that very object aside for the block and puts it back after. A skipped module's hook
does not run: it would only move inputs and fetch weights (from disk, for an offloaded layer) that a
skipped sub-layer never reads; its zeros are made on its input's device, which the enclosing layer's
hook already chose, and the next module's hook moves the stream on. `skipping_rows`' row masks wrap
the module's forward as found, hook included.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from ..models.adapters import adapter_for
from ..support.errors import SwiftlabError
from .skipset import SkipSet

_MISSING = object()


def check_skip_set(model: nn.Module, skip_set: SkipSet) -> None:
    """Raise a SwiftlabError unless `skip_set` is for a model with as many decoder layers as `model`."""
    n = len(adapter_for(model).layers(model))
    if skip_set.num_layers != n:
        raise SwiftlabError(
            f"skip set is for a {skip_set.num_layers}-layer model, this model has {n} layers")


def skipped_parts(model: nn.Module, skip_set: SkipSet):
    """(module, skip function) for every module the skip set switches off. A layer with both
    sub-layers off is replaced whole by the identity: its norms and residual adds are skipped too."""
    adapter = adapter_for(model)
    layers = adapter.layers(model)
    whole = set(skip_set.attention) & set(skip_set.mlp) if adapter.whole_layer_skippable(model) else set()
    for i in sorted(whole):
        yield layers[i], identity_layer
    for i in skip_set.attention:
        if i not in whole:
            yield from adapter.attention_parts(layers[i])
    for i in skip_set.mlp:
        if i not in whole:
            yield from adapter.mlp_parts(layers[i])


def identity_layer(args: tuple, kwargs: dict):
    """A decoder layer in transformers 5 returns its output hidden states; skipped, its input."""
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def skipping(model: nn.Module, skip_set: SkipSet | None) -> Iterator[None]:
    """Run the model with `skip_set`'s sub-layers switched off, for the duration of the block."""
    if not skip_set:
        yield
        return
    check_skip_set(model, skip_set)
    # Remember whatever instance-level forward was there (accelerate's device hooks put one there).
    saved = []
    try:
        for module, skip_fn in skipped_parts(model, skip_set):
            _override(saved, module, _skipped_forward(skip_fn))
        yield
    finally:
        _restore(saved)


def _override(saved: list, module: nn.Module, forward) -> None:
    saved.append((module, module.__dict__.get("forward", _MISSING)))
    module.forward = forward


def _restore(saved: list) -> None:
    """Put back exactly what each module had: its class forward, or an earlier instance override."""
    for module, previous in reversed(saved):
        if previous is _MISSING:
            del module.forward
        else:
            module.forward = previous


@contextmanager
def skipping_rows(model: nn.Module, skip_sets: list[SkipSet]) -> Iterator[None]:
    """Batch row b runs with skip_sets[b] switched off: one batched pass scores many candidates.

    A sub-layer skipped by some rows but not all is computed for the whole batch and its output
    zeroed in the skipping rows; `h + 0` is exactly what a skipped sub-layer leaves, so each row
    gets what a pass with its own skip set alone would give. (A skipped attention layer's KV for
    that row is computed but only that row's own, zeroed, attention reads it.) Sub-layers that
    every row skips are skipped outright.
    """
    if not skip_sets:
        yield
        return
    for s in skip_sets:
        check_skip_set(model, s)
    adapter = adapter_for(model)
    layers = adapter.layers(model)
    everyone = SkipSet(tuple(set.intersection(*(set(s.attention) for s in skip_sets))),
                       tuple(set.intersection(*(set(s.mlp) for s in skip_sets))),
                       skip_sets[0].num_layers, allow_edges=True)
    saved = []
    try:
        for kind, parts_of in (("attention", adapter.attention_parts), ("mlp", adapter.mlp_parts)):
            for i in sorted(set().union(*(getattr(s, kind) for s in skip_sets))):
                if i in getattr(everyone, kind):
                    continue
                keep = torch.tensor([0.0 if i in getattr(s, kind) else 1.0 for s in skip_sets])
                module = parts_of(layers[i])[-1][0]  # the part whose output joins the residual
                _override(saved, module, _row_masked_forward(module.forward, keep))
        with skipping(model, everyone):
            yield
    finally:
        _restore(saved)


def _row_masked_forward(forward, keep: torch.Tensor):
    def masked(*args, **kwargs):
        out = forward(*args, **kwargs)
        first = out[0] if isinstance(out, tuple) else out
        # OPT flattens (batch, seq) into one leading axis before its MLP: repeat per position
        rows = keep.repeat_interleave(first.shape[0] // keep.numel()).to(first.device, first.dtype)
        scaled = first * rows.view(-1, *([1] * (first.dim() - 1)))
        return (scaled, *out[1:]) if isinstance(out, tuple) else scaled
    masked.swiftlab_skipped = True
    return masked


def _skipped_forward(skip_fn):
    def forward(*args, **kwargs):
        return skip_fn(args, kwargs)
    forward.swiftlab_skipped = True
    return forward


def is_pristine(model: nn.Module) -> bool:
    """True when no swiftlab override is left anywhere in the model (used by tests and asserts)."""
    return not any(getattr(m.__dict__.get("forward"), "swiftlab_skipped", False) for m in model.modules())
