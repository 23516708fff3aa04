"""The benchmark scripts run end to end on tiny settings (their numbers mean nothing here; a script
that crashes after 20 minutes of measuring does)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_step_costs():
    out = run_script("step_costs.py", "--repeats", "2", "--ratios", "0.45", "--blocks", "1", "4", "--context", "40")
    for row in ("full x1", "full x4", "draft r=0.45", "lean r=0.45", "lean16 r=0.45"):
        assert re.search(rf"^{re.escape(row)}\s+\d+\.\d+\s+\d+\.\d+$", out, re.M), out


def test_small_batch():
    out = run_script("small_batch.py", "--model", "lab", "--context", "40", "--repeats", "5")
    for k in (1, 2, 4, 32):  # every width timed both ways
        assert re.search(rf"^ *{k} +[\d.]+ms +[\d.]+ +[\d.]+ms +[\d.]+ +[\d.]+$", out, re.M), out
    # the one-token pass is F.linear's either way; every few-token width has a way chosen per weight shape
    assert re.search(r"^ +1 +[\d.]+ms +1\.00 ", out, re.M), out
    assert re.search(r"^  192x192: 2:[TL] 3:[TL] 4:[TL] 6:[TL] 8:[TL] 11:[TL] 16:[TL] 26:[TL] 32:[TL]$", out, re.M), out


def test_speed_table(tmp_path):
    out = run_script("speed_table.py", "--prompts", "1", "--repeats", "1", "--tasks", "story", "--methods", "ar,swift",
                     "--max-new-tokens", "8", "--out", str(tmp_path))
    assert re.search(r"^\| story \| swift \| [\d.]+ \| [\d.]+x \|.*\| True \|$", out, re.M), out
    assert re.search(r"^\| swift \| [\d.]+x \| [\d.]+x \| \d+% \| [\d.]+ \|$", out, re.M), out  # the bound table
    assert (tmp_path / "results.jsonl").read_text().count("\n") == 2


def test_speed_table_on_spec_bench_categories(tmp_path):
    data = ROOT.parent / "shared" / "data" / "spec_bench" / "question.jsonl"
    if not data.exists():
        pytest.skip("Spec-Bench's question.jsonl is not at ../shared/data/spec_bench")
    out = run_script("speed_table.py", "--data", str(data), "--prompts", "1", "--repeats", "1", "--tasks",
                     "summarization,translation", "--methods", "ar,swift", "--max-new-tokens", "8", "--out", str(tmp_path))
    for label in ("specbench-summarization", "specbench-translation"):  # the lab model: RAG prompts exceed its context
        assert f"## {label}" in out and re.search(rf"^\| {label} \| swift \| [\d.]+ \| [\d.]+x \|.*\| True \|$", out, re.M), out
        assert re.search(rf"^{label} swift: search [\d.]+% of wall time", out, re.M), out


def test_search_budget_prints_both_streams(tmp_path):
    out = run_script("search_budget.py", "--model", "lab", "--tasks", "story", "--prompts", "1",
                     "--max-new-tokens", "8", "--out", str(tmp_path))
    for stream in ("swift", "swift+lookup"):
        assert re.search(rf"^\| story \| after \| {re.escape(stream)} \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \|.*\| True \|$",
                         out, re.M), out


def test_clasp_costs_and_bench_run_on_spec_bench_categories(tmp_path):
    data = ROOT.parent / "shared" / "data" / "spec_bench" / "question.jsonl"
    if not data.exists():
        pytest.skip("Spec-Bench's question.jsonl is not at ../shared/data/spec_bench")
    out = run_script("clasp_costs.py", "--model", "lab", "--data", str(data), "--tasks", "translation", "--prompts", "1",
                     "--max-new-tokens", "8", "--repeats", "2")
    assert "## translation" in out and re.search(r"^\| clasp:1 \(every step\) \|.*\| True \|$", out, re.M), out
    out = run_script("clasp_bench.py", "--model", "lab", "--data", str(data), "--tasks", "translation", "--prompts", "1",
                     "--repeats", "1", "--max-new-tokens", "8", "--out", str(tmp_path))
    assert re.search(r"^\| specbench-translation \| clasp", out, re.M), out


def test_memory():
    out = run_script("memory.py", "--tasks", "story", "--prompts", "1", "--max-new-tokens", "8")
    for method in ("ar", "swift", "swift+search", "swift+lookup", "swift+lookup+search"):
        assert re.search(rf"^story\s+{re.escape(method)}\s+-?[\d.]+\s+[\d.]+\s+[\d.]+x$", out, re.M), out


def test_search_gp_quick():
    pytest.importorskip("skopt")  # the benchmark that measured it against the search's own GP
    out = run_script("search_gp.py", "--quick")
    cost = r"[\d.]+ \([\d.]+-[\d.]+\)"
    assert re.search(rf"^\| 16 \| {cost} \| {cost} \| {cost} \| {cost} \| [\d.]+x \| [\d.]+x \| [\d.]+x \|$", out, re.M), out
    # with every point inside today's history, skopt's GP on the same pool proposes the same sets
    assert re.search(r"^\| 4 \| 0 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| 3 \| 3/3 \| 3/3 \| [\d.]+ / [\d.]+ / [\d.]+ / [\d.]+ \|$",
                     out, re.M), out


def test_one_prompt_quick():
    # each run is a fresh `python -m swiftlab generate` process: one prompt, cold then warm, both methods
    out = run_script("one_prompt.py", "--quick", "--models", "lab", "--prompts", "1", "--max-new-tokens", "8")
    for phase in ("cold", "warm"):
        assert re.search(rf"^\| {phase} \| 0 \| 8 \| [\d.]+ \| [\d.]+ \| [\d.]+x \|.*\| searching \| True \|$", out, re.M), out
        assert re.search(rf"^\| lab \| {phase} \| [\d.]+x \([\d.]+-[\d.]+\) \| [\d.]+x \([\d.]+-[\d.]+\) \| True \|$",
                         out, re.M), out


def test_hf_generate():
    out = run_script("hf_generate.py", "--prompts", "1", "--repeats", "1", "--max-new-tokens", "8")
    assert "every output identical to generate()'s" in out  # a mismatch exits non-zero, naming the prompt
    for variant in ("plain", "repetition_penalty=1.2"):
        assert re.search(rf"^\| {re.escape(variant)} \| [\d.]+ \([\d.-]+\) \| [\d.]+ \([\d.-]+\) \| [\d.]+x \([\d.-]+\) \|$",
                         out, re.M), out


def test_limit_prints_the_bound_every_method_and_its_last_line():
    # hf-static-compile is left out here: compiling takes about a minute on the lab model
    out = run_script("limit.py", "--model", "lab", "--prompts", "2", "--max-new-tokens", "6",
                     "--methods", "ar,hf-generate,hf-static,swift,swift+lookup")
    assert re.search(r"weight-read bound \d+\.\d+ ms per pass$", out, re.M), out
    for method in ("ar", "hf-generate", "hf-static", "swift", "swift+lookup"):
        assert re.search(rf"^{re.escape(method)} +[\d.]+ \([-\d.]+-[\d.]+\) +[\d.]+x ", out, re.M), out
    assert re.search(r"^limit: lab AR pass/bound \d+\.\d+x, swift\+lookup over best AR \d+\.\d+x$", out.strip(), re.M), out


def test_limit_times_a_random_model_of_a_real_shape_and_counts_outputs_equal_to_ar():
    out = run_script("limit.py", "--shape", "tiny", "--prompts", "2", "--max-new-tokens", "6",
                     "--methods", "ar,hf-generate,hf-static")
    assert re.search(r"^tiny-shape on cpu \(torch.float16, ", out, re.M), out  # --shape's default precision
    # greedy decodings of one model: transformers' eager ones give ar's tokens
    assert re.search(r"^outputs token-identical to ar's: hf-generate 2/2, hf-static 2/2$", out, re.M), out
    assert re.search(r"^limit: tiny-shape AR pass/bound \d+\.\d+x, swift\+lookup over best AR nanx$", out, re.M), out


def test_lookup_kinds_times_every_method_and_checks_their_tokens():
    out = run_script("lookup_kinds.py", "--tasks", "summarization", "--prompts", "1", "--repeats", "1")
    assert "## summarization: 1 prompts x 1 repeats" in out, out
    for method in ("ar", "hf-prompt-lookup", "swift+lookup", "+1-gram,restart10", "pure lookup"):
        assert re.search(rf"^{re.escape(method)} +\d+\.\d +\d+\.\d\dx +\d+\.\d\d-\d+\.\d\d +\d+\.\d\d$", out, re.M), out


def test_guard_cost_times_both_passes_under_both_guard_rules(stories_path):
    # real weights of 5 layers: its three graphs compile in about a minute
    out = run_script("guard_cost.py", "--model", str(stories_path), "--context", "20", "--blocks", "2", "--calls", "3")
    for name in ("one-token pass", "lean16 draft r=0.45"):
        for how in ("every guard", "differentiating"):
            assert re.search(rf"^{re.escape(name)} +{how} +\d+\.\d+  \d+\.\d+-\d+\.\d+$", out, re.M), out
        assert re.search(rf"^{re.escape(name)}: every guard / differentiating \d+\.\d+x$", out, re.M), out
