"""Experiments and measurements: the layer-sparsity probes, the interleaved benchmark harness, experiment
chains, plotly figures (pure functions of records), the teaching views' records, and per-task quality."""
