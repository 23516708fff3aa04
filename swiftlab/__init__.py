"""swiftlab: SWIFT self-speculative decoding by layer skipping, for Hugging Face decoder models."""

# The public names load on first use (PEP 562), so `import swiftlab` and the CLI's start-up import
# nothing heavy: torch and transformers load inside the CLI's handlers, where Ctrl-C is one line.
_EXPORTS = {
    "ADAPTERS": "adapters", "Adapter": "adapters", "num_layers": "adapters", "generate": "api",
    "DecodeSession": "decoding", "StepEvent": "decoding", "SwiftParams": "decoding", "decode": "decoding",
    "hf_generate": "hf",
    "SwiftlabError": "errors", "load_model": "loading", "DecodeResult": "records", "SamplingParams": "sampling",
    "is_pristine": "skipping", "skipping": "skipping", "SkipSet": "skipset",
    "load_reference_skip_sets": "skipset", "save_reference_skip_sets": "skipset",
}

import sys
import types

__version__ = "0.1.0"
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    from importlib import import_module
    from importlib.util import find_spec

    if name not in _EXPORTS:
        if not name.startswith("_") and find_spec(f"{__name__}.{name}") is not None:
            return import_module(f".{name}", __name__)  # swiftlab.decoding etc., as the eager imports allowed
        raise AttributeError(f"module 'swiftlab' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        # importing the submodule swiftlab.skipping binds it as an attribute; the exported name
        # `skipping` is the function of that name (as with eager imports), so keep that binding
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
