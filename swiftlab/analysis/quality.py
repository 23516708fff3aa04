"""How well a model does the built-in tasks, measured on held-out prompts.

One metric per task that a reader can check by eye: reasoning, exact match of the final answer;
summarization, the share of the article's key facts (names, places, dates, numbers) recalled in
the summary; story and code, held-out perplexity of the reference plus how often greedy text
degenerates into repetition; code also the share of completions that parse as Python.
Generation runs through the decoding engine (greedy, autoregressive).
"""

from __future__ import annotations

import ast
import math
import re

import torch
from tqdm.auto import tqdm

from ..tasks.chat import decode_continuation
from ..engine.decoding import decode
from ..tasks.base import Example
from ..tasks.catalog import get_examples

NEW_TOKENS = {"reasoning": 96, "summarization": 72, "story": 96, "code": 128}
ANSWER = re.compile(r"The answer is (-?\d+)")


# ----- pure metric functions (unit-tested on hand-made strings) -----------------------------
def final_answer(generation: str) -> str | None:
    """The number in the first 'The answer is N.' of a worked solution."""
    match = ANSWER.search(generation)
    return match.group(1) if match else None


def fact_recall(summary: str, facts) -> float:
    """Share of facts found verbatim in the summary's first paragraph."""
    first = summary.split("\n", 1)[0]
    return sum(fact in first for fact in facts) / len(facts) if facts else 0.0


def repetition_rate(text: str, n: int = 4) -> float:
    """Share of word n-grams that repeat an earlier n-gram of the same text (0 = none)."""
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def function_body(generation: str) -> str:
    """The generated body up to where the function ends (the first line back at column 0)."""
    kept = []
    for line in generation.split("\n"):
        if kept and line.strip() and not line[0].isspace():
            break
        kept.append(line)
    return "\n".join(kept)


def parses(prompt: str, generation: str) -> bool:
    """The prompt plus the generated body parse as Python, and the body holds at least one statement
    (a docstring alone parses: an empty completion must not count)."""
    body = function_body(generation)
    if not body.strip():
        return False
    try:
        ast.parse(prompt + body)
        return True
    except (SyntaxError, ValueError):
        return False


# ----- model-dependent measurements ---------------------------------------------------------
def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.inference_mode()
def reference_perplexity(model, tokenizer, examples: list[Example]) -> float:
    """exp(mean negative log-likelihood of the reference tokens given the prompt)."""
    total_nll, total_tokens = 0.0, 0
    device = model.get_input_embeddings().weight.device
    limit = getattr(model.config, "max_position_embeddings", 10**9)
    for ex in examples:
        prompt, ref = _ids(tokenizer, ex.prompt), _ids(tokenizer, ex.reference)
        ids = (prompt + ref)[-limit:]
        n_ref = min(len(ref), len(ids) - 1)
        logits = model(torch.tensor([ids], device=device)).logits[0, -n_ref - 1:-1].float()
        targets = torch.tensor(ids[-n_ref:], device=device)
        total_nll += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        total_tokens += n_ref
    return math.exp(total_nll / total_tokens)


def generations(model, tokenizer, examples: list[Example], max_new_tokens: int, progress: bool = False) -> list[str]:
    """The model's greedy autoregressive continuation of each example's prompt, up to `max_new_tokens` tokens,
    as text; the prompt is tokenized as it is (no special tokens, no chat template)."""
    out = []
    for ex in tqdm(examples, desc=f"{examples[0].task if examples else ''} generations", disable=not progress,
                   leave=False):
        ids = _ids(tokenizer, ex.prompt)
        result = decode(model, ids, method="ar", max_new_tokens=max_new_tokens)
        out.append(decode_continuation(tokenizer, ids, result.token_ids))
    return out


def evaluate_task(model, tokenizer, task: str, n: int = 40, seed: int = 0, progress: bool = False) -> dict:
    """One built-in task's metrics (see the module docstring) on `n` held-out examples for `seed`: {"task",
    "n", the metrics, "samples": two prompt tails with their generations}. `task` must be one of
    `BUILTIN_TASKS` (another is a SwiftlabError or a KeyError)."""
    examples = get_examples(task, n, seed=seed, split="heldout")
    texts = generations(model, tokenizer, examples, NEW_TOKENS[task], progress)
    if task == "reasoning":
        correct = [final_answer(t) == ex.answer for t, ex in zip(texts, examples)]
        metrics = {"exact_match": sum(correct) / len(correct)}
    elif task == "summarization":
        metrics = {"fact_recall": sum(fact_recall(t, ex.facts) for t, ex in zip(texts, examples)) / len(texts)}
    else:
        metrics = {"perplexity": reference_perplexity(model, tokenizer, examples),
                   "repetition": sum(map(repetition_rate, texts)) / len(texts)}
        if task == "code":
            metrics["parse_rate"] = sum(parses(ex.prompt, t) for t, ex in zip(texts, examples)) / len(texts)
    return {"task": task, "n": len(examples), **metrics, "samples": [
        {"prompt_tail": ex.prompt[-160:], "generation": t} for ex, t in list(zip(examples, texts))[:2]]}


BUILTIN_TASKS = ("reasoning", "summarization", "story", "code")


def evaluate(model, tokenizer, n: int = 40, seed: int = 0, tasks=BUILTIN_TASKS, progress: bool = True) -> list[dict]:
    """`evaluate_task` on each of `tasks` (default: the four built-in ones) in order, one dict each."""
    return [evaluate_task(model, tokenizer, t, n, seed, progress) for t in tqdm(tasks, desc="tasks", disable=not progress)]


def untrained_twin(model):
    """A randomly initialised model of the same architecture and size: the baseline to beat."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    twin = AutoModelForCausalLM.from_config(model.config, dtype=torch.float32)
    return twin.to(model.get_input_embeddings().weight.device).eval()
