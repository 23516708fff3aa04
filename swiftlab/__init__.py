"""swiftlab: SWIFT self-speculative decoding by layer skipping, for Hugging Face decoder models."""

# The public names load on first use (PEP 562), so `import swiftlab` and the CLI's start-up import
# nothing heavy: torch and transformers load inside the CLI's handlers, where Ctrl-C is one line.
_EXPORTS = {
    "ADAPTERS": "models.adapters", "Adapter": "models.adapters", "num_layers": "models.adapters",
    "load_model": "models.loading",
    "DecodeSession": "engine.decoding", "StepEvent": "engine.decoding", "SwiftParams": "engine.decoding",
    "decode": "engine.decoding", "DecodeResult": "engine.records", "SamplingParams": "engine.sampling",
    "is_pristine": "engine.skipping", "skipping": "engine.skipping", "SkipSet": "engine.skipset",
    "load_reference_skip_sets": "engine.skipset", "save_reference_skip_sets": "engine.skipset",
    "generate": "api", "hf_generate": "hf", "SwiftlabError": "support.errors",
}

__version__ = "0.1.0"
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    from importlib import import_module
    from importlib.util import find_spec

    if name not in _EXPORTS:
        if not name.startswith("_") and find_spec(f"{__name__}.{name}") is not None:
            return import_module(f".{name}", __name__)  # swiftlab.engine, swiftlab.tasks etc., as the eager imports allowed
        raise AttributeError(f"module 'swiftlab' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

