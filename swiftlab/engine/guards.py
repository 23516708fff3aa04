"""Calling a compiled graph with dynamo's differentiating guards alone, once its graphs are compiled.

Why: before each call dynamo checks every guard of the graph, one per parameter among them (~150 on the lab
model). `torch.compiler.set_stance(skip_guard_eval_unsafe=True)` checks only the guards that tell its graphs
apart: the tensor checks of every input that is not an nn.Parameter (ids, positions, mask, cache tensors, a
draft's flags) and the guards that failed when a later graph was compiled (what tells a one-token pass from a
verify pass, one model from another). Lab model, one compiled pass at context 300: a one-token pass 4.25
against 3.81 ms, a lean16 draft 2.26 against 1.98 (2026-12-04, benchmarks/guard_cost.py). Where no graph's guards pass (a model cast to another
precision: its caches' checks fail) dynamo raises rather than compile under that stance; the call is made
again under every guard, which compiles. Callers use it only for graphs compiled before (compiled.py):
a kind of pass with no graph yet (a tree pass before its graph) could match a graph with no guard on
what it differs by.

set_stance's own object costs 150 us to make; the setter behind it and a copy of the stance record, ~1 us
(private: a torch without them, or whose stance lacks the field, checks every guard).
"""

from __future__ import annotations

import dataclasses

try:
    from torch._dynamo import eval_frame as _eval_frame

    _set_stance = _eval_frame._set_stance
    dataclasses.replace(_eval_frame._stance, skip_guard_eval_unsafe=True)  # a torch whose stance has the field
except (ImportError, AttributeError, TypeError):  # pragma: no cover
    _set_stance = None

REFUSED = "Recompilation triggered with skip_guard_eval_unsafe"  # dynamo's words where no graph's guards pass


def lightly_guarded(fn, *args, **kwargs):
    """fn(*args, **kwargs), a compiled function, under its differentiating guards alone (see above)."""
    if _set_stance is None:
        return fn(*args, **kwargs)
    prior = _eval_frame._stance
    _set_stance(dataclasses.replace(prior, skip_guard_eval_unsafe=True))
    try:
        return fn(*args, **kwargs)
    except RuntimeError as error:
        if not str(error).startswith(REFUSED):
            raise
    finally:
        _set_stance(prior)
    return fn(*args, **kwargs)  # (it raised before running a graph) under every guard: compiled


def with_own_code(fn):
    """fn with a code object of its own. Dynamo keeps its graphs per code object, at most
    `torch._dynamo.config.recompile_limit` (8) of them, and runs a function eagerly after that: with one code
    object for every model a third compiled model's passes ran eagerly (3 graphs a model), and one model's
    calls checked the guards of the others' graphs first."""
    fn.__code__ = fn.__code__.replace()
    return fn
