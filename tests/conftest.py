import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded in tests

STORIES = Path(__file__).resolve().parents[2] / "shared" / "models" / "stories260K"


@pytest.fixture(scope="session")
def stories_path():
    if not (STORIES / "config.json").exists():
        pytest.skip("real-weights fixture ../shared/models/stories260K is not present")
    return STORIES


@pytest.fixture(scope="session")
def local_llama_dir(tmp_path_factory):
    """A tiny Llama and a byte-level tokenizer saved with save_pretrained: a local 'hub' folder."""
    from tiny_models import tiny_model

    from swiftlab.demo import byte_tokenizer

    path = tmp_path_factory.mktemp("tiny-llama")
    model = tiny_model("llama", vocab_size=258)  # the byte tokenizer's vocabulary
    model.save_pretrained(path)  # safetensors by default
    byte_tokenizer().save_pretrained(path)
    return path
