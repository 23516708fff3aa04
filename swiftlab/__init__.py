"""swiftlab: SWIFT self-speculative decoding by layer skipping, for Hugging Face decoder models."""

from .adapters import ADAPTERS, Adapter, num_layers
from .api import generate
from .decoding import DecodeSession, StepEvent, SwiftParams, decode
from .errors import SwiftlabError
from .loading import load_model
from .records import DecodeResult
from .sampling import SamplingParams
from .skipping import is_pristine, skipping
from .skipset import SkipSet, load_reference_skip_sets, save_reference_skip_sets

__version__ = "0.1.0"
__all__ = [
    "ADAPTERS", "Adapter", "DecodeResult", "DecodeSession", "StepEvent", "SamplingParams", "SkipSet", "SwiftParams", "SwiftlabError",
    "decode", "generate", "is_pristine", "load_model", "load_reference_skip_sets", "num_layers",
    "save_reference_skip_sets", "skipping",
]
