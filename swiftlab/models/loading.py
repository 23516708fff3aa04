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
from ..support.errors import SwiftlabError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "auto": "auto"}


def resolve_dtype(dtype):
    """A torch dtype (or "auto") from a name in DTYPES ("float32", "fp16", "bf16", ...); a torch.dtype
    and None pass through, any other value is a SwiftlabError."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise SwiftlabError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _few_listed(text: str, keep: int = 3) -> str:
    """A message ending in a long list (accelerate names every parameter a device_map misses) with its first items."""
    head, colon, listed = text.partition(": ")
    items = listed.split(", ")
    if not colon or len(items) <= keep:
        return text
    return f"{head}: {', '.join(items[:keep])} and {len(items) - keep} more"


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
               device_map=None, max_memory: dict | None = None, offload_folder: str | os.PathLike | None = None,
               trust_remote_code: bool = False):
    """(model, tokenizer) for a known name (`swiftlab models`), a hub id or a local folder, in eval mode.

    A model larger than one device loads with accelerate's `device_map` ("auto", "balanced", "sequential", or a
    dict from module names to a device, "cpu" or "disk"), `max_memory` (device -> bytes or "2GiB") and
    `offload_folder` (where weights placed on "disk" may be written; required wherever the map uses the disk,
    so that a `max_memory` too small for the model says so rather than silently reading every pass from disk)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    placement = _placement(device, device_map, max_memory, offload_folder)

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
    _drop_stale_gguf_marker(config, local)
    from safetensors import SafetensorError

    try:
        with _without_loading_bar():
            model, report = AutoModelForCausalLM.from_pretrained(
                name, config=config, dtype=resolve_dtype(dtype) or "auto", use_safetensors=True,
                trust_remote_code=trust_remote_code, output_loading_info=True, **placement)
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except SafetensorError as e:  # a truncated or damaged download
        raise SwiftlabError(f"cannot load model {name!r}: its weights file is damaged or incomplete "
                            f"({_first_line(e)}); download it again") from None
    except (OSError, ValueError, RuntimeError) as e:  # accelerate refuses a device_map with ValueError/RuntimeError
        raise SwiftlabError(f"cannot load model {name!r}: {_few_listed(_first_line(e))}") from None
    _check_weights_match(name, config, report)
    _check_disk_allowed(name, model, offload_folder)
    add_end_of_turn(model, tokenizer)  # a chat answer ends at its end-of-turn token, as at end-of-text
    if device is not None and device_map is None:
        model = model.to(device)
    model.eval()
    return model, tokenizer


def _drop_stale_gguf_marker(config, folder: Path) -> None:
    """A folder converted from GGUF (registry.convert_gguf) keeps transformers' GGUF marker in its config, though
    its weights are plain float32 safetensors and the GGUF file is not there: loading it "as GGUF" would mark the
    model quantized and refuse disk offload. The same weights load as an ordinary model without the marker."""
    marker = getattr(config, "quantization_config", None)
    if (isinstance(marker, dict) and marker.get("quant_method") == "gguf" and folder.is_dir()
            and not (folder / str(marker.get("gguf_file", ""))).is_file() and any(folder.glob("*.safetensors"))):
        del config.quantization_config


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


STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's ways of filling devices in turn


def _placement(device, device_map, max_memory, offload_folder) -> dict:
    """from_pretrained's placement keywords, checked: every device named exists here, sizes are sizes, and
    the offload folder can be written; one line naming the problem otherwise."""
    if device_map is None:
        extra = [name for name, value in (("max_memory", max_memory), ("offload_folder", offload_folder)) if value]
        if extra:
            raise SwiftlabError(f"{' and '.join(extra)} place a model across devices: give a device_map too "
                                "(e.g. device_map='auto')")
        return {}
    if device is not None:
        raise SwiftlabError("give device or device_map, not both (device_map={'': device} puts it all on one)")
    placement = {"device_map": _checked_map(device_map)}
    named = placement["device_map"].values() if isinstance(device_map, dict) else [placement["device_map"]]
    if "disk" in named and offload_folder is None:
        raise SwiftlabError("device_map puts modules on disk: give offload_folder=... (a folder offloaded weights "
                            "may be written to)")
    if max_memory is not None:
        placement["max_memory"] = _checked_memory(max_memory)
    if offload_folder is not None:
        placement["offload_folder"] = str(_writable_folder(offload_folder))
    return placement


def _checked_map(device_map):
    if isinstance(device_map, str) and device_map in STRATEGIES:
        return device_map
    if isinstance(device_map, dict):
        if not device_map:
            raise SwiftlabError("device_map is empty: map module names (\"\" for the whole model) to devices")
        return {_module_name(key): _map_device(value, f"device_map[{key!r}]") for key, value in device_map.items()}
    if isinstance(device_map, (str, int, torch.device)) and not isinstance(device_map, bool):
        return _map_device(device_map, "device_map")
    raise SwiftlabError(f"device_map must be one of {', '.join(STRATEGIES)}, a device, or a dict from module names "
                        f"to devices; got {type(device_map).__name__}")


def _module_name(key) -> str:
    if not isinstance(key, str):
        raise SwiftlabError(f"device_map keys are module names (strings), got {key!r}")
    return key


def _map_device(value, where: str):
    """A device accelerate may place modules on: "disk", "cpu", a GPU index, or a device that exists here."""
    from ..support import validate

    if value == "disk":
        return value
    name = f"cuda:{value}" if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        torch.device(name)
    except (RuntimeError, TypeError):
        raise SwiftlabError(f"{where}: unknown device {value!r}: use cpu, disk, cuda, cuda:N (or N) or mps") from None
    try:
        validate.device(str(name))  # a device of a kind swiftlab runs on, and present on this machine
    except SwiftlabError as e:
        raise SwiftlabError(f"{where}: {e}") from None
    return value if isinstance(value, int) else str(name)


def _checked_memory(max_memory) -> dict:
    """max_memory: device -> bytes (an int) or a size string accelerate reads ("500MB", "2GiB")."""
    from accelerate.utils import convert_file_size_to_int

    if not isinstance(max_memory, dict) or not max_memory:
        raise SwiftlabError(f"max_memory must be a dict from devices to sizes (e.g. {{'cpu': '2GiB'}}), "
                            f"got {max_memory!r}")
    checked = {}
    for key, size in max_memory.items():
        device = _map_device(key, f"max_memory[{key!r}]")
        try:
            number = size if isinstance(size, int) and not isinstance(size, bool) else convert_file_size_to_int(size)
        except (ValueError, TypeError, AttributeError):
            number = -1
        if not isinstance(size, (int, str)) or isinstance(size, bool) or number < 0:
            raise SwiftlabError(f"max_memory[{key!r}]: {size!r} is not a size: give bytes or a string such as '2GiB'")
        checked[device] = size
    return checked


def _writable_folder(folder) -> Path:
    """The offload folder, made if missing, after proving a file can be written there."""
    import tempfile

    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise SwiftlabError(f"offload_folder {str(folder)!r} is not a writable folder: "
                            f"{e.strerror or _first_line(e)}") from None
    return path


def _check_disk_allowed(name: str, model, offload_folder) -> None:
    """Weights the device map put on disk are read back from disk at every pass: only where the caller said so."""
    on_disk = [module for module, device in (getattr(model, "hf_device_map", None) or {}).items() if device == "disk"]
    if on_disk and offload_folder is None:
        what = "the whole model" if on_disk == [""] else f"{len(on_disk)} module(s), e.g. {on_disk[0]}"
        raise SwiftlabError(f"cannot load model {name!r}: max_memory leaves no room on any device for {what}, "
                            "which would be read from disk at every pass: raise max_memory, or give "
                            "offload_folder=... to allow offloading to disk")
