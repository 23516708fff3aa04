"""Linear layers for the few-token passes speculative decoding makes, done the faster of two equal ways.

A verify pass feeds the model 2-30 tokens at once. On a CPU, PyTorch's `F.linear` sends such a
small batch to a general matrix product that can be far slower than the same product taken the
other way round, `(W @ x.T).T`: on this project's machine (MKL, 2 cores) a 4-token pass of
SmolLM2-135M cost 1.6 one-token passes, and its 49152-row output layer alone took 17-22 ms for 2-8
tokens against 3-7 ms the other way. Which way wins depends on the matrix's shape, the token count
and the BLAS, so neither is hard-coded: `SmallBatchProducts` times both on the first calls of each
shape and token count (the calls are real work; their results are used) and keeps the faster.

Both ways compute the same product; only the rounding order differs (as between any two BLAS
kernels), so greedy outputs stay the model's own. One-token passes (drafts, plain steps, our
autoregressive baseline) and long prompt passes keep `F.linear` untouched.

As with `skipping`, the override is an instance-level `forward` that exists only inside
`small_batch_products(...)`: on exit every module's own `forward` is back, whatever happened.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

MAX_ROWS = 64  # tokens in a pass above which `F.linear` is kept (prompt passes): verify trees are smaller
TRIALS = 3  # timed calls of each way per shape and token count before the choice is made


class SmallBatchProducts:
    """x @ W.T + b for a few rows of x, by whichever of two equal products was measured faster for this
    weight shape, dtype and row count (timed on the first TRIALS calls of each, alternating)."""

    WAYS = ("linear", "transposed")

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.samples: dict[tuple, dict[str, list[float]]] = {}
        self.chosen: dict[tuple, str] = {}

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
        if not 2 <= rows <= MAX_ROWS:
            return F.linear(x, weight, bias)
        key = (tuple(weight.shape), weight.dtype, rows)
        way = self.chosen.get(key)
        if way is not None:
            return self._product(way, x, weight, bias)
        samples = self.samples.setdefault(key, {w: [] for w in self.WAYS})
        way = min(self.WAYS, key=lambda w: len(samples[w]))  # alternate, so drift hits both alike
        start = self.clock()
        out = self._product(way, x, weight, bias)
        samples[way].append(self.clock() - start)
        if all(len(s) >= TRIALS for s in samples.values()):
            self.chosen[key] = min(self.WAYS, key=lambda w: sorted(samples[w])[TRIALS // 2])  # the medians
            self.samples.pop(key, None)  # (two threads may finish the same key)
        return out

    @staticmethod
    def _product(way: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if way == "linear":
            return F.linear(x, weight, bias)
        flat = x.reshape(-1, x.shape[-1])
        out = (weight @ flat.t()).t().contiguous()  # [rows, out]: the layout callers .view() as they like
        if bias is not None:
            out += bias
        return out.view(*x.shape[:-1], weight.shape[0])


PRODUCTS = SmallBatchProducts()  # one per process: the choice belongs to the machine, not to a model


def _eligible(module: nn.Module) -> bool:
    """Plain linear layers with floating-point weights on the CPU, whose `forward` nobody overrode. A module
    accelerate dispatched (device_map) is left to its hook: the hook moves its inputs, and where the module is
    offloaded fetches its weight, which waits on the meta device between calls (reading it here would bypass that)."""
    weight = getattr(module, "weight", None)
    return (type(module) is nn.Linear and "forward" not in module.__dict__ and not hasattr(module, "_hf_hook")
            and isinstance(weight, torch.Tensor) and weight.device.type == "cpu" and weight.is_floating_point())


def linear_layers(model: nn.Module) -> list[nn.Module]:
    """The modules `small_batch_products` takes over (a run lists them once, not at every step)."""
    return [m for m in model.modules() if _eligible(m)]


@contextmanager
def small_batch_products(model: nn.Module, layers: list[nn.Module] | None = None,
                         products: SmallBatchProducts | None = None) -> Iterator[None]:
    """Inside: the model's CPU linear layers (or the given `layers`) compute few-token batches with
    `products` (default: the process's PRODUCTS). Nested or overlapping uses are safe: a module
    already taken over is left to whoever took it."""
    products = products if products is not None else PRODUCTS
    taken = []
    try:
        for module in linear_layers(model) if layers is None else layers:
            if "forward" not in module.__dict__:  # __dict__ directly: nn.Module.__setattr__ costs a step's time
                module.__dict__["forward"] = _forward(module, products)
                taken.append(module)
        yield
    finally:
        for module in taken:
            module.__dict__.pop("forward", None)


def _forward(module: nn.Module, products: SmallBatchProducts):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return products(x, module.weight, module.bias)
    return forward
