"""Loading a model and its tokenizer from a hub id or a local folder, safely.

Weights load from safetensors only and remote code stays off unless the caller opts in. The
architecture is checked from the config before any weight is read, so an unsupported model fails
in a second with a message, not after a multi-gigabyte download.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .adapters import check_supported
from .errors import SwiftlabError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "auto": "auto"}


def resolve_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise SwiftlabError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_model(name_or_path: str | os.PathLike, *, dtype=None, device: str | None = None,
               device_map=None, trust_remote_code: bool = False):
    """(model, tokenizer) for a known name (`swiftlab models`), a hub id or a local folder, in eval mode."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    name = str(name_or_path)
    from .registry import KNOWN, add_end_of_turn, local_folder

    known = KNOWN.get(name)
    if known is not None:  # a name swiftlab knows: the bundled lab model, or a converted real model
        name = str(local_folder(name))
        dtype = dtype or "float32"  # lab ships in float16 to stay small; CPUs compute float32 faster
    local = Path(name).expanduser()
    if local.exists() and not local.is_dir():
        raise SwiftlabError(f"model path {name} is a file; give the folder that holds config.json")
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        where = "local folder" if local.is_dir() else "hub model id (or no network to reach it)"
        raise SwiftlabError(f"cannot load model {name!r}: unknown {where}: {_first_line(e)}") from None
    check_supported(config)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            name, config=config, dtype=resolve_dtype(dtype) or "auto", device_map=device_map,
            use_safetensors=True, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise SwiftlabError(f"cannot load model {name!r}: {_first_line(e)}") from None
    add_end_of_turn(model, tokenizer)  # a chat answer ends at its end-of-turn token, as at end-of-text
    if device is not None and device_map is None:
        model = model.to(device)
    model.eval()
    return model, tokenizer
