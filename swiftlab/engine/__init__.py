"""One decoding: skip sets and switching sub-layers off, the KV cache, sampling, draft trees, the
drafters and the policy that picks one per step, and DecodeSession, the step everything else calls.
matchness (the search's objective) lives here because it runs the model on the engine's cache."""
