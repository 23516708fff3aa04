"""Finding skip sets: the proposals (random search plus a Gaussian process), the scoring budget and pass
costs, SwiftStream across prompts, the skip-set store, the Self-SD baseline, per-step selection, and the
default plan a run without a skip set decodes with."""
