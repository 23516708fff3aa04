"""The lab model's card: what it is, how it was made, how well it does, and a loss curve."""

from __future__ import annotations

import platform
from pathlib import Path

from ..support.storage import atomic_write_text
from .train import TrainConfig, lineage, read_log


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


def _checkpoint_step(run_dir: Path) -> int:
    import torch

    return torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)["step"]


def _steps_done(log: list[dict]) -> int:
    return log[-1]["step"] if log else 0


def _stage_line(config: TrainConfig, log: list[dict]) -> str:
    done = _steps_done(log)
    tokens = done * config.batch_size * config.seq_len
    start = f"continued from `{config.init_from}`" if config.init_from else "from scratch"
    planned = f" (stopped there; its schedule was for {config.steps})" if done < config.steps else ""
    return (f"{start}: mix {config.mix}, peak lr {config.lr} ({config.warmup} warm-up steps, cosine decay), "
            f"seed {config.seed}; {done} steps{planned}, {tokens / 1e6:.1f} M tokens, "
            f"{training_seconds(log) / 60:.0f} min")


def _reproduce(stages: list[tuple[Path, TrainConfig]], logs: list[list[dict]]) -> str:
    lines = []
    for (run_dir, config), log in zip(stages, logs):
        options = f"--out {run_dir} --steps {config.steps}"
        if config.init_from:
            mix = ",".join(f"{k}={v}" for k, v in config.mix.items())
            options += (f" --init-from {config.init_from} --lr {config.lr} --warmup {config.warmup}"
                        f" --seed {config.seed} --mix {mix}")
        done = _steps_done(log)
        stop = f"   # interrupt it once step {done} is checkpointed" if done < config.steps else ""
        lines.append(f"python -m swiftlab train-lab {options}{stop}")
    lines.append(f"python -m swiftlab train-lab --out {stages[-1][0]} --export")
    return "\n".join(lines)


def write_model_card(target: Path, run_dir: Path, quality_md: str, samples: list[dict], extra: dict) -> Path:
    """Write the lab model's README.md and loss_curve.svg into `target`, from the training run in
    `run_dir` and the stages it continued from (`lineage`). `quality_md`: the quality table in Markdown; `samples`:
    dicts of task, prompt_tail and generation; `extra` may name the "hardware". Returns the README's path."""
    target, run_dir = Path(target), Path(run_dir)
    stages = [(folder, TrainConfig(**config)) for folder, config in lineage(run_dir)]
    logs = [read_log(folder) for folder, _ in stages]
    for i in range(len(stages) - 1):  # a later stage started from the checkpoint: steps logged after it do not count
        used = _checkpoint_step(stages[i][0])
        logs[i] = [r for r in logs[i] if r["step"] <= used]
    config = stages[-1][1]
    # one curve over all stages: each stage's steps continue where the previous stage ended
    log, offset = [], 0
    for stage_log in logs:
        log += [{**r, "step": r["step"] + offset} for r in stage_log]
        offset += _steps_done(stage_log)
    last = log[-1]
    held = [r for r in log if "heldout_loss" in r]
    tokens = sum(_steps_done(stage_log) * c.batch_size * c.seq_len for stage_log, (_, c) in zip(logs, stages))
    stage_md = "\n".join(f"  {i + 1}. {_stage_line(c, stage_log)}"
                          for i, (stage_log, (_, c)) in enumerate(zip(logs, stages)))
    atomic_write_text(target / "loss_curve.svg", loss_curve_svg(log))
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
- Corpus: generated on the fly by the task generators, train split only (held-out prompts are never seen);
  documents of one to three demonstrations in each task's prompt format.
- Plain next-token loss; no layer dropout or early-exit losses. AdamW (0.9, 0.95), weight decay
  {config.weight_decay}, batch {config.batch_size} × {config.seq_len} tokens, bfloat16 autocast: {config.bf16}.
- Stages:
{stage_md}
- In all: {last['step']} steps, {tokens / 1e6:.1f} M tokens, {sum(training_seconds(x) for x in logs) / 60:.0f} min
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
{_reproduce(stages, logs)}
python -m swiftlab tasks evaluate --model lab
```

## License
Apache-2.0, like swiftlab. The code task's training text is CPython's standard library (PSF license).
"""
    atomic_write_text(target / "README.md", card)
    return target / "README.md"
