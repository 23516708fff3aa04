"""The inductor backend swiftlab compiles its passes with (compiled.py, compileddraft.py): torch's own, with the
few-row matrix products of a decoding pass made faster on a CPU."""

from __future__ import annotations

import torch
from torch._decomp.decompositions import pw_cast_for_opmath
from torch._dynamo.utils import counters
from torch._inductor.compile_fx import compile_fx
from torch._inductor.decomposition import select_decomp_table
from torch.fx.experimental.symbolic_shapes import statically_known_true

aten = torch.ops.aten


def inductor(cpu: bool):
    """Inductor, with a decoding pass's few-row matrix products made faster on a CPU (_few_row_product), and on
    a CPU its C++ wrapper, which calls the kernels from generated C++ instead of Python."""
    def backend(graph, example_inputs):
        # AOTAutograd's cache is keyed on the graph before decomposition, so it would hand back a graph compiled
        # without this one; inductor's own cache (the C++ compile, the slow part) sees the decomposed graph
        with torch._functorch.config.patch(enable_autograd_cache=False):
            return compile_fx(graph, example_inputs, config_patches={"cpp_wrapper": True} if cpu else None,
                              decompositions={**select_decomp_table(), aten.mm.default: _few_row_product})
    return backend


def _few_row_product(rows: torch.Tensor, matrix: torch.Tensor, out_dtype: torch.dtype | None = None):
    """rows @ W, the CPU's way (below); elsewhere, and for a product with an output dtype, inductor's own
    (NotImplemented: decided before any cast to the compute dtype is traced)."""
    if rows.device.type != "cpu" or out_dtype is not None:
        return NotImplemented
    return _few_row_product_on_cpu(rows, matrix)


@pw_cast_for_opmath
def _few_row_product_on_cpu(rows: torch.Tensor, matrix: torch.Tensor):
    """rows @ W on a CPU, for the few rows a decoding pass multiplies (measured on this machine's AMD CPU with
    MKL, 2026-12-03; benchmarks/limit.py):
    - one row: (x.T * W).sum(0). Inductor makes that one vectorized, threaded loop over W, which reads the
      weights ~3x faster than the BLAS's matrix-vector product (7 GB/s against 24 from memory, 60-90 from
      the cache). A one-token pass is little else.
    - more rows than W has columns: (W.T @ rows.T).T, the same BLAS product taken the other way round,
      which its kernels do 1.3-4x faster for 2-8 rows and as fast for 16 (smallbatch.py: the same choice
      for eager passes, timed there). With more rows the multiply-and-sum loop would read W once per row.
    The verify graph's width is symbolic (it serves every width): it is taken the other way round too."""
    few, columns = rows.shape[0], matrix.shape[1]
    if statically_known_true(few == 1):
        counters["inductor"]["one_row_product"] += 1
        return (rows.unsqueeze(2) * matrix.unsqueeze(0)).sum(dim=1)
    # (the product taken the other way round comes back here with an int row count: it stays the BLAS's)
    if isinstance(few, torch.SymInt) or (isinstance(columns, int) and few < columns):
        counters["inductor"]["few_row_product"] += 1
        return torch.mm(matrix.t(), rows.t()).t()
    return NotImplemented
