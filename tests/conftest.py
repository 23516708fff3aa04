import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded in tests
# `bench` and `optimize` write found sets to the store: never to the user's own (~/.cache/swiftlab)
os.environ.setdefault("SWIFTLAB_STORE", os.path.join(tempfile.mkdtemp(prefix="swiftlab-tests-"), "skip_layers.json"))

STORIES = Path(__file__).resolve().parents[2] / "shared" / "models" / "stories260K"


@pytest.fixture(scope="session")
def stories_path():
    if not (STORIES / "config.json").exists():
        pytest.skip("real-weights fixture ../shared/models/stories260K is not present")
    return STORIES


def _save_tiny_llama(path, **overrides):
    from tiny_models import tiny_model

    from swiftlab.models.demo import byte_tokenizer

    model = tiny_model("llama", vocab_size=258, **overrides)  # the byte tokenizer's vocabulary
    model.save_pretrained(path)  # safetensors by default
    byte_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def local_llama_dir(tmp_path_factory):
    """A tiny Llama and a byte-level tokenizer saved with save_pretrained: a local 'hub' folder."""
    return _save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def local_long_llama_dir(tmp_path_factory):
    """The same with a long context, for task prompts (bytes make them long)."""
    return _save_tiny_llama(tmp_path_factory.mktemp("tiny-llama-long"), max_position_embeddings=4096)
