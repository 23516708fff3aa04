"""Switching sub-layers off for a draft pass, and on again, without a trace.

A skipped sub-layer gets an instance-level `forward` that returns zeros (see adapters.py), so it
does no work and writes no KV-cache entries. The override exists only inside `skipping(...)`:
on exit the module's own `forward` is back, whatever happened inside. Outside the context the
model is exactly the model the user gave us: same modules, same state_dict, same outputs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from .adapters import adapter_for
from .errors import SwiftlabError
from .skipset import SkipSet

_MISSING = object()


def check_skip_set(model: nn.Module, skip_set: SkipSet) -> None:
    n = len(adapter_for(model).layers(model))
    if skip_set.num_layers != n:
        raise SwiftlabError(
            f"skip set is for a {skip_set.num_layers}-layer model, this model has {n} layers")


def skipped_parts(model: nn.Module, skip_set: SkipSet):
    """(module, skip function) for every module the skip set switches off."""
    adapter = adapter_for(model)
    layers = adapter.layers(model)
    for i in skip_set.attention:
        yield from adapter.attention_parts(layers[i])
    for i in skip_set.mlp:
        yield from adapter.mlp_parts(layers[i])


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
            saved.append((module, module.__dict__.get("forward", _MISSING)))
            module.forward = _skipped_forward(skip_fn)
        yield
    finally:
        for module, previous in reversed(saved):
            if previous is _MISSING:
                del module.forward
            else:
                module.forward = previous


def _skipped_forward(skip_fn):
    def forward(*args, **kwargs):
        return skip_fn(args, kwargs)
    forward.swiftlab_skipped = True
    return forward


def is_pristine(model: nn.Module) -> bool:
    """True when no swiftlab override is left anywhere in the model (used by tests and asserts)."""
    return not any(getattr(m.__dict__.get("forward"), "swiftlab_skipped", False) for m in model.modules())
