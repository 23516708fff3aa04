"""benchmarks/gpu_check.py at its smoke sizes on the CPU (seconds): the tables and the record have their shape,
it needs none of the packages the GPU machine lacks, and its identity check fails on a wrong output."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402
from swiftlab.analysis.bench import hf_generate  # noqa: E402

# packages the GPU machine does not have and bin/gpu-wheels does not bring
ABSENT_THERE = ("skopt", "sklearn", "scipy", "plotly", "anywidget", "ipywidgets", "gguf", "kaleido", "IPython")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "gpu_check.json"
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in ABSENT_THERE)  # importing one fails
    code = (f"import runpy, sys; {blocked}; sys.argv = ['gpu_check.py', '--smoke', '--device', 'cpu', "
            f"'--out', {str(out)!r}]; runpy.run_path({str(ROOT / 'benchmarks' / 'gpu_check.py')!r}, "
            "run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    return done, json.loads(out.read_text())


def test_smoke_run_prints_the_three_tables(smoke):
    done, _ = smoke
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    assert "SMOKE sizes: the numbers mean nothing" in out
    assert "acceptance is meaningless" in out
    identity = re.findall(r"^\| (lab|llama2-\S+ .*random) \| float32 \| (sdpa|eager) \| (chain|tree|tree, transformers "
                          r"drafter) \| 1/1 \| identical \| [\d.e+-]+ \| [\d.]+ \| \d+% \|$", out, re.M)
    assert len(identity) == 3 * 2 * 3, out  # (lab, 7B shape, 13B shape) x (sdpa, eager) x 3 decodings
    costs = re.findall(r"^\| (lab|llama2-\S+ .*random), \d+ layers \| float32 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| "
                       r"[\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M)
    assert len(costs) == 3, out
    assert re.search(r"^\| model \| dtype \| full x1 ms \| full x4 \| draft r=0.3 \| draft r=0.45 \| "
                     r"lean r=0.3 \| lean r=0.45 \|$", out, re.M), out
    assert re.search(r"^\| story \| r=[\d.]+ searched \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \[[\d.]+-[\d.]+\] \| "
                     r"[\d.]+ \| identical \|$", out, re.M), out
    assert "exit status 0" in out


def test_smoke_record_has_every_part(smoke):
    _, record = smoke
    assert record["smoke"] is True and record["errors"] == []
    assert record["machine"]["device"] == "cpu" and record["machine"]["transformers"]
    assert len(record["identity"]) == 18 and {r["verdict"] for r in record["identity"]} == {"identical"}
    assert {r["attention"] for r in record["identity"]} == {"sdpa", "eager"}
    for row in record["pass_costs"]:
        assert set(row["ms"]) == {"full x1", "full x4", "draft r=0.3", "draft r=0.45", "lean r=0.3", "lean r=0.45"}
        assert row["x_full"]["full x1"] == 1.0 and all(ms > 0 for ms in row["ms"].values())
    (speed,) = record["speed"]
    assert speed["task"] == "story" and speed["identical"] and speed["speedup_min"] <= speed["speedup_median"]
    assert set(record["seconds"]) == {"identity", "pass_costs", "speed", "total"}


@pytest.fixture(scope="module")
def tiny():
    shape = gpu_check.SMOKE.shapes["llama2-7b (smoke: width 64)"]
    model = gpu_check.random_llama(shape, 3, torch.float32, "cpu", "sdpa")
    prompt = gpu_check.random_prompts(shape.vocab, 1, 12)[0]
    return model, prompt, hf_generate(model, prompt, 10).token_ids


def test_identity_check_reports_a_wrong_token(tiny):
    model, prompt, reference = tiny
    assert gpu_check.judge(model, prompt, reference, list(reference))["verdict"] == "identical"
    with torch.inference_mode():  # the model's least likely token at position 4: far from any float tie
        logits = model(input_ids=torch.tensor([prompt + reference[:4]])).logits[0, -1]
    wrong = reference[:4] + [int(logits.argmin())] + reference[5:]
    verdict = gpu_check.judge(model, prompt, reference, wrong)
    assert verdict["verdict"] == "MISMATCH" and verdict["first_difference"] == 4, verdict
    assert verdict["worst_gap"] > verdict["tolerance"]


def test_identity_check_reports_an_output_cut_short(tiny):
    model, prompt, reference = tiny
    assert 2 not in reference[:-1]  # no end-of-text inside: stopping early is wrong
    assert gpu_check.judge(model, prompt, reference, reference[:-3])["verdict"] == "MISMATCH"


def test_a_mismatch_or_a_failed_case_fails_the_run():
    record = {"identity": [{"verdict": "identical"}, {"verdict": "float tie"}], "speed": [{"verdict": "identical"}],
              "errors": []}
    assert gpu_check.exit_status(record) == 0
    assert gpu_check.exit_status({**record, "speed": [{"verdict": "MISMATCH"}]}) == 1

    def broken():
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    gpu_check.guarded(record, "identity", "lab float16 eager", broken)
    assert record["errors"] == [{"part": "identity", "case": "lab float16 eager",
                                 "error": "RuntimeError: CUDA error: an illegal memory access was encountered"}]
    assert gpu_check.exit_status(record) == 1


def test_the_gpu_command_is_the_same_everywhere_it_is_written():
    """The run-tool command line in the script's docstring, bin/gpu-wheels and the measurements page: one command."""
    command = re.compile(r"set -o pipefail; python3 -m pip install .*gpu_check\.log")
    found = {name: command.findall((ROOT / name).read_text()) for name in
             ("benchmarks/gpu_check.py", "bin/gpu-wheels", "docs/measurements.md")}
    assert all(len(lines) == 1 for lines in found.values()), found
    assert len({lines[0] for lines in found.values()}) == 1, found
    assert len(found["docs/measurements.md"][0]) <= 2000  # the run tool's limit on a command
