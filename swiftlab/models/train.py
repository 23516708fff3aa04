"""Train the bundled lab model: a plain Llama on a corpus the task generators build.

Nothing here makes layer skipping artificially easy (no layer dropout, no early-exit losses): the
lab should show layer sparsity as it appears in an ordinary model. The run is seeded and
resumable. Every batch is generated from (seed, step), so a resumed run sees exactly the data it
would have seen; a checkpoint and the loss log are written as it goes, atomically, so an
interrupted run loses nothing already recorded.

    python -m swiftlab train-lab --out runs/lab --steps 2500        # CPU by default, GPU if present
    python -m swiftlab train-lab --out runs/lab --export             # write swiftlab/models/lab
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..support.errors import SwiftlabError
from ..support.storage import append_line, atomic_write_json, atomic_write_text

LAB_DIR = Path(__file__).resolve().parent / "lab"


@dataclass
class TrainConfig:
    """One training run's configuration, saved as train_config.json: the Llama's shape (layers, hidden,
    intermediate, heads, vocab_size, context), the batches (`batch_size` × `seq_len` tokens from the `mix` of
    CORPUS_PARTS), the schedule (`steps`, `lr`, `warmup`, `min_lr_ratio`), a held-out loss every `eval_every` steps,
    and `init_from`. A run resumes only with the configuration it was started with."""
    layers: int = 16
    hidden: int = 192
    intermediate: int = 512
    heads: int = 6
    vocab_size: int = 2048
    context: int = 1024  # max positions of the model; training windows are seq_len
    seq_len: int = 512
    batch_size: int = 16
    steps: int = 1250
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 60
    weight_decay: float = 0.1
    seed: int = 0
    mix: dict = field(default_factory=lambda: {"reasoning": 0.4, "summarization": 0.25, "story": 0.2, "code": 0.15})
    eval_every: int = 50
    bf16: bool = True
    tokenizer_docs: int = 20_000
    # warm start: a finished run folder whose weights and tokenizer this run continues from, with a
    # fresh optimizer and schedule (a second stage with another mix, say); None trains from scratch
    init_from: str | None = None


# ----- the corpus --------------------------------------------------------------------------
# What a corpus can be made of: the four tasks in their prompt formats, plus "facts", fact-extraction
# drills over the summarization articles (see _fact_drill), and "copy", lists repeated (_copy_drill).
CORPUS_PARTS = ("reasoning", "summarization", "story", "code", "facts", "copy")


def _copy_drill(rng: random.Random) -> str:
    """A list of names, places, roles and months, then the same list again. Copying a token that
    followed an earlier occurrence of the current one (an induction head) is what a summary needs for
    every name after the first; measured on the lab model, it had not learnt that from summaries
    alone (the last name after a correctly copied first name got 1/16, a guess among the names)."""
    from ..tasks.generators import CITIES, FIRST, LAST, MONTHS, ROLES

    pools = [FIRST, LAST, CITIES, ROLES, MONTHS]
    items = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" if rng.random() < 0.4 else rng.choice(rng.choice(pools))
             for _ in range(rng.randint(4, 12))]
    listed = ", ".join(items)
    return f"List: {listed}\nAgain: {listed}"


def _fact_drill(article: str, facts) -> str:
    """Who/where/when/how many, read off an article. A summary's hardest token is its first, the name
    it must look up at the article's start; a drill asks for that kind of look-up four times over."""
    person, city, month_day, year, number = facts
    return f"Article: {article}\nWho: {person}. Where: {city}. When: {month_day}, {year}. How many: {number}."


def _train_examples(task_name: str, seed: int):
    """(key, example) pairs of a generated task, train split only: held-out prompts are never trained on."""
    from ..tasks import get_task, split_of

    for key, ex in get_task(task_name).candidates(seed):
        if split_of(key) == "train":
            yield key, ex


def _documents(task_name: str, rng: random.Random):
    """Training documents in the prompt format of `task_name`, from its train split only."""
    if task_name not in CORPUS_PARTS:
        raise SwiftlabError(f"unknown corpus part {task_name!r} (known: {', '.join(CORPUS_PARTS)})")
    if task_name == "copy":
        while True:
            yield _copy_drill(rng)
    if task_name == "facts":
        for article, ex in _train_examples("summarization", rng.randrange(2**31)):
            yield _fact_drill(article, ex.facts)
    if task_name == "code":
        pool = _code_pool()
        while True:
            ex = pool[rng.randrange(len(pool))]
            yield ex.prompt + ex.reference
    stream = _train_examples(task_name, rng.randrange(2**31))  # seed drawn now: the batches stay as they were
    while True:
        # a few demonstrations per document, like few-shot prompts
        yield "\n\n".join(_as_text(task_name, next(stream)[1]) for _ in range(rng.randint(1, 3)))


def _as_text(task_name: str, ex) -> str:
    """An example written out in full, as its task's prompts show demonstrations."""
    last = ex.prompt.rsplit("\n\n", 1)[-1]  # the query part, without the built-in shots
    return last + ex.reference


_CODE = None


def _code_pool():
    global _CODE
    if _CODE is None:
        from ..tasks import get_task

        _CODE = get_task("code").examples("train", 100_000)
    return _CODE


def mixed_documents(config: TrainConfig, rng: random.Random):
    """An endless stream of training documents, each from a corpus part drawn with `config.mix`'s
    weights by `rng`: the same rng state gives the same documents."""
    names = sorted(config.mix)
    weights = [config.mix[n] for n in names]
    streams = {n: _documents(n, rng) for n in names}
    while True:
        yield next(streams[rng.choices(names, weights)[0]])


def train_tokenizer(config: TrainConfig):
    """Byte-level BPE with digits split one by one (arithmetic is easier on single digits)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    docs = mixed_documents(config, random.Random(f"tokenizer:{config.seed}"))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((next(docs) for _ in range(config.tokenizer_docs)), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def batch_for_step(config: TrainConfig, tokenizer, step: int, split: str = "train") -> torch.Tensor:
    """[batch, seq_len] token ids, a pure function of (seed, step): resuming repeats nothing."""
    rng = random.Random(f"{config.seed}:{split}:{step}")
    docs = mixed_documents(config, rng)
    need = config.batch_size * config.seq_len
    ids: list[int] = []
    while len(ids) < need + 1:
        ids += tokenizer(next(docs))["input_ids"] + [tokenizer.eos_token_id]
    start = rng.randrange(0, max(1, len(ids) - need))
    return torch.tensor(ids[start:start + need]).view(config.batch_size, config.seq_len)


def make_model(config: TrainConfig, tokenizer):
    """A freshly initialised LlamaForCausalLM of the config's shape (seeded by `config.seed`, tied
    embeddings) for `tokenizer`'s vocabulary and special tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden, intermediate_size=config.intermediate,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.heads,
        head_dim=config.hidden // config.heads,
        max_position_embeddings=config.context, tie_word_embeddings=True, rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(model_config)


def lr_at(config: TrainConfig, step: int) -> float:
    """The learning rate at 0-based `step`: linear warm-up to `lr` over `warmup` steps, then cosine decay to
    `lr * min_lr_ratio` at `steps`."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# ----- the loop -----------------------------------------------------------------------------
def train(out: str | os.PathLike, config: TrainConfig, device: str | None = None, progress: bool = True) -> Path:
    """Train, or resume, the run in folder `out`: each step appended to log.jsonl, a checkpoint at each held-out
    evaluation; returns `out`. `device` None: CUDA where there is one, else the CPU. A SwiftlabError where `out`
    holds a checkpoint of another configuration."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    ckpt_path, log_path = out / "checkpoint.pt", out / "log.jsonl"
    from transformers import PreTrainedTokenizerFast

    if (out / "tokenizer.json").exists():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(out)
    elif config.init_from:  # the weights only make sense with the tokenizer they were trained with
        tokenizer = PreTrainedTokenizerFast.from_pretrained(_run_folder(config.init_from))
        tokenizer.save_pretrained(out)
    else:
        tokenizer = train_tokenizer(config)
        tokenizer.save_pretrained(out)
    model = make_model(config, tokenizer).to(device)
    if config.init_from and not ckpt_path.exists():
        _warm_start(model, config.init_from)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95),
                                  weight_decay=config.weight_decay)
    step = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        saved = TrainConfig(**state["config"])
        if asdict(saved) != asdict(config):
            raise SwiftlabError(f"{ckpt_path} was made with a different configuration; use a new --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        # steps logged after the last checkpoint will be redone: drop their records
        kept = [r for r in read_log(out) if r["step"] <= step]
        atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in kept))
    atomic_write_json(out / "train_config.json", asdict(config))
    eval_batch = batch_for_step(config, tokenizer, 0, split="eval").to(device)

    bar = tqdm(total=config.steps, initial=step, desc="training lab model", disable=not progress)
    model.train()
    started = time.time()
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(config, step)
        batch = batch_for_step(config, tokenizer, step).to(device)
        # bfloat16 autocast (float32 master weights) doubles CPU throughput where the CPU has
        # bf16 instructions (measured 980 -> 1900 tokens/s for this model on 2 EPYC cores)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=config.bf16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        record = {"step": step, "loss": round(loss.item(), 4), "lr": lr_at(config, step - 1),
                  "elapsed_s": round(time.time() - started, 1)}
        if step % config.eval_every == 0 or step == config.steps:
            model.eval()
            with torch.no_grad():
                record["heldout_loss"] = round(model(input_ids=eval_batch, labels=eval_batch).loss.item(), 4)
            model.train()
        append_line(log_path, json.dumps(record))  # the record first: a checkpoint never runs ahead of the log
        if "heldout_loss" in record:
            _save_checkpoint(ckpt_path, model, optimizer, step, config)
        bar.set_postfix(loss=record["loss"])
        bar.update()
    bar.close()
    return out


def _run_folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not (path / "checkpoint.pt").exists() or not (path / "tokenizer.json").exists():
        raise SwiftlabError(f"--init-from {path}: not a finished training run (needs checkpoint.pt and tokenizer.json)")
    return path


def _warm_start(model, init_from: str | os.PathLike) -> None:
    """Load the weights of an earlier run; its architecture must match this run's."""
    state = torch.load(_run_folder(init_from) / "checkpoint.pt", map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise SwiftlabError(f"--init-from {init_from}: its model has another shape ({first})") from None


def lineage(out: str | os.PathLike) -> list[tuple[Path, dict]]:
    """(run folder, training configuration) of each stage that led to a run, oldest first."""
    out = Path(out)
    config = json.loads((out / "train_config.json").read_text())
    earlier = lineage(config["init_from"]) if config.get("init_from") else []
    return earlier + [(out, config)]


def _save_checkpoint(path: Path, model, optimizer, step: int, config: TrainConfig) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "config": asdict(config)}, tmp)
    os.replace(tmp, path)


def read_log(out: str | os.PathLike) -> list[dict]:
    """The records of a run's log.jsonl, oldest first (step, loss, lr, elapsed_s; heldout_loss at
    evaluations); [] without a log, and a line cut short is left out."""
    path = Path(out) / "log.jsonl"
    # a line cut short (a run killed mid-write) is left out: resuming redoes that step anyway
    return [json.loads(line) for line in path.read_text().splitlines()
            if line.strip() and line.rstrip().endswith("}")] if path.exists() else []


def export(out: str | os.PathLike, target: str | os.PathLike = LAB_DIR) -> Path:
    """Write the latest checkpoint as a half-precision Hugging Face folder (the shipped model)."""
    from transformers import PreTrainedTokenizerFast

    out, target = Path(out), Path(target)
    ckpt = out / "checkpoint.pt"
    if not ckpt.exists():
        raise SwiftlabError(f"no checkpoint in {out}; train first")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    config = TrainConfig(**state["config"])
    tokenizer = PreTrainedTokenizerFast.from_pretrained(out)
    model = make_model(config, tokenizer)
    model.load_state_dict(state["model"])
    target.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(target)
    tokenizer.save_pretrained(target)
    atomic_write_json(target / "training.json", {"config": asdict(config), "steps_done": state["step"],
                                                  "stages": [config for _, config in lineage(out)], "log_tail": read_log(out)[-5:]})
    return target
