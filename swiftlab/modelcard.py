"""The lab model's card: what it is, how it was made, how well it does, and a loss curve."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from .train import TrainConfig, read_log


def training_seconds(log: list[dict]) -> float:
    """Wall time of a run that may have been resumed (each resumed segment restarts its clock)."""
    total, segment = 0.0, 0.0
    for record in log:
        if record["elapsed_s"] < segment:
            total += segment
        segment = record["elapsed_s"]
    return total + segment


def loss_curve_svg(log: list[dict], width: int = 640, height: int = 300) -> str:
    """A dependency-free SVG line chart of train loss (blue) and held-out loss (orange) per step."""
    train = [(r["step"], r["loss"]) for r in log]
    held = [(r["step"], r["heldout_loss"]) for r in log if "heldout_loss" in r]
    if not train:
        return ""
    max_step = max(s for s, _ in train)
    values = [v for _, v in train + held]
    lo, hi = min(values), max(values)
    pad = 40

    def xy(step, value):
        x = pad + (width - 2 * pad) * step / max_step
        y = height - pad - (height - 2 * pad) * (value - lo) / ((hi - lo) or 1)
        return f"{x:.1f},{y:.1f}"

    def line(points, colour):
        return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(xy(*p) for p in points)}"/>'

    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        line(train, "#1f77b4"), line(held, "#ff7f0e") if held else "",
        f'<text x="{pad}" y="20">loss (blue: train, orange: held-out); steps 0..{max_step}</text>',
        f'<text x="4" y="{pad}">{hi:.2f}</text><text x="4" y="{height - pad}">{lo:.2f}</text>',
        "</svg>"])


def write_model_card(target: Path, run_dir: Path, quality_md: str, samples: list[dict], extra: dict) -> Path:
    target, run_dir = Path(target), Path(run_dir)
    config = TrainConfig(**json.loads((run_dir / "train_config.json").read_text()))
    log = read_log(run_dir)
    last = log[-1]
    held = [r for r in log if "heldout_loss" in r]
    tokens = last["step"] * config.batch_size * config.seq_len
    (target / "loss_curve.svg").write_text(loss_curve_svg(log))
    sample_md = "\n".join(
        f"**{s['task']}** — prompt ends `…{s['prompt_tail'][-90:]!s}`\n\n```\n{s['generation'].strip()[:500]}\n```\n"
        for s in samples)
    card = f"""# swiftlab lab model

A small Llama trained by swiftlab on its own task suite, shipped so the lab runs offline on a CPU.
It exists to show layer sparsity and self-speculative decoding on a real (if small) model.

## Architecture
Llama (Hugging Face format), {config.layers} decoder layers, hidden {config.hidden}, MLP {config.intermediate},
{config.heads} attention heads of {config.hidden // config.heads}, context {config.context}, tied embeddings,
byte-level BPE tokenizer of {config.vocab_size} tokens with digits split one by one (Hugging Face `tokenizers`).
Weights in float16 safetensors; `swiftlab.load_model("lab")` loads them as float32.

## Training
- Corpus: generated on the fly by the task generators, train split only (held-out prompts are never seen):
  mix {config.mix}; documents of one to three demonstrations in each task's prompt format.
- Plain next-token loss; no layer dropout or early-exit losses. AdamW (0.9, 0.95), weight decay
  {config.weight_decay}, peak lr {config.lr} with {config.warmup} warm-up steps and cosine decay,
  batch {config.batch_size} × {config.seq_len} tokens, bfloat16 autocast: {config.bf16}, seed {config.seed}.
- Steps done: {last['step']} of {config.steps} planned ({tokens / 1e6:.1f} M tokens), in {training_seconds(log) / 60:.0f} min
  on {extra.get('hardware', platform.processor() or platform.machine())}.
- Final train loss {last['loss']:.3f}; held-out loss {held[-1]['heldout_loss'] if held else float('nan'):.3f}
  (at step {held[-1]['step'] if held else '-'}).

![loss curve](loss_curve.svg)

## Quality (held-out prompts, greedy; `python -m swiftlab tasks evaluate --model lab`)
{quality_md}

## What it writes (greedy, held-out prompts)
{sample_md}
## Reproduce
```
python -m swiftlab train-lab --out runs/lab --steps {config.steps}
python -m swiftlab train-lab --out runs/lab --export
python -m swiftlab tasks evaluate --model lab
```

## License
Apache-2.0, like swiftlab. The code task's training text is CPython's standard library (PSF license).
"""
    (target / "README.md").write_text(card)
    return target / "README.md"
