"""Loading a model and its tokenizer from a hub id or a local folder, safely.

Weights load from safetensors only and remote code stays off unless the caller opts in. The
architecture is checked from the config before any weight is read, so an unsupported model fails
in a second with a message, not after a multi-gigabyte download.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
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


@contextmanager
def _without_loading_bar():
    """transformers draws a "Loading weights" bar for every load, even of a 15 MB model: noise at the top of every
    notebook. Off for our loads only (a hub download keeps its bars); the settings are restored after."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    bars_on, downloads_on = hf_logging.is_progress_bar_enabled(), not are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # this also turns off the hub's download bars
    if downloads_on:
        enable_progress_bars()
    try:
        yield
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()
        if not downloads_on:
            disable_progress_bars()


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
    if local.is_dir() and not (local / "config.json").is_file():
        raise SwiftlabError(f"model folder {name} has no config.json: is it the folder save_pretrained wrote?")
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        where = "local folder" if local.is_dir() else "hub model id (or no network to reach it)"
        raise SwiftlabError(f"cannot load model {name!r}: unknown {where}: {_first_line(e)}") from None
    check_supported(config)
    from safetensors import SafetensorError

    try:
        with _without_loading_bar():
            model, report = AutoModelForCausalLM.from_pretrained(
                name, config=config, dtype=resolve_dtype(dtype) or "auto", device_map=device_map,
                use_safetensors=True, trust_remote_code=trust_remote_code, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except SafetensorError as e:  # a truncated or damaged download
        raise SwiftlabError(f"cannot load model {name!r}: its weights file is damaged or incomplete "
                            f"({_first_line(e)}); download it again") from None
    except (OSError, ValueError) as e:
        raise SwiftlabError(f"cannot load model {name!r}: {_first_line(e)}") from None
    _check_weights_match(name, config, report)
    add_end_of_turn(model, tokenizer)  # a chat answer ends at its end-of-turn token, as at end-of-text
    if device is not None and device_map is None:
        model = model.to(device)
    model.eval()
    return model, tokenizer


def _check_weights_match(name: str, config, report: dict) -> None:
    """Weights the config has no place for, or places the weights do not fill (left randomly
    initialised), mean config and weights disagree, e.g. on the layer count: refuse, say which."""
    missing, unexpected = sorted(report.get("missing_keys") or []), sorted(report.get("unexpected_keys") or [])
    mismatched = report.get("mismatched_keys") or []
    if not (missing or unexpected or mismatched):
        return
    layers = getattr(config, "num_hidden_layers", None)
    problems = [f"{len(keys)} {kind} (e.g. {keys[0]})" for kind, keys in
                (("weights missing from the checkpoint", missing), ("unexpected weights", unexpected),
                 ("weights of the wrong shape", [str(k[0]) if isinstance(k, tuple) else str(k) for k in mismatched]))
                if keys]
    raise SwiftlabError(f"cannot load model {name!r}: its config ({layers} layers) does not match its weights: "
                        + ", ".join(problems))
