"""The command line: the JSON contract, and one-line errors with no traceback."""

import json
import subprocess
import sys

import pytest

from swiftlab.cli import main

KEYS = {"text", "token_ids", "method", "skip_set", "steps", "mean_accepted_tokens", "acceptance_rate",
        "wall_s", "timings_s"}


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_json_swift_equals_ar(capsys, local_llama_dir):
    base = ["generate", "--model", str(local_llama_dir), "--prompt", "hi there", "--max-new-tokens", "12", "--json"]
    code, out, _ = run_cli(capsys, *base, "--method", "swift", "--skip-ratio", "0.5")
    assert code == 0
    swift = json.loads(out)
    assert KEYS <= set(swift)
    assert swift["method"] == "swift" and set(swift["skip_set"]) >= {"attention", "mlp"}
    assert set(swift["timings_s"]) == {"prefill", "draft", "verify", "optimize", "other"}
    code, out, _ = run_cli(capsys, *base, "--method", "ar")
    ar = json.loads(out)
    assert ar["token_ids"] == swift["token_ids"] and ar["skip_set"] == {"attention": [], "mlp": []}


def test_generate_with_skip_set_file_and_sampling(capsys, local_llama_dir, tmp_path):
    ref = tmp_path / "skip_layers.json"
    ref.write_text(json.dumps({"tiny_a": {"attention": [1, 2], "mlp": [3]}, "tiny_b": {"attention": [4], "mlp": []}}))
    code, out, _ = run_cli(capsys, "generate", "--model", str(local_llama_dir), "--prompt", "x",
                           "--skip-set", f"{ref}#tiny_a", "--max-new-tokens", "8", "--json",
                           "--temperature", "0.9", "--top-p", "0.9", "--top-k", "20", "--seed", "3")
    assert code == 0
    d = json.loads(out)
    assert d["skip_set"]["attention"] == [1, 2] and len(d["token_ids"]) == 8
    code2, out2, _ = run_cli(capsys, "generate", "--model", str(local_llama_dir), "--prompt", "x",
                             "--skip-set", f"{ref}#tiny_a", "--max-new-tokens", "8", "--json",
                             "--temperature", "0.9", "--top-p", "0.9", "--top-k", "20", "--seed", "3")
    assert json.loads(out2)["token_ids"] == d["token_ids"]  # seeded


BAD_CASES = {  # name: (arguments after `generate`, with {model} and {tmp} filled in; expected message)
    "unknown model": ("--model /definitely/not/here --prompt hi", "cannot load model '/definitely/not/here'"),
    "prompt too long": ("--model {model} --prompt " + "a" * 300, "prompt too long"),
    "two skip sources": ("--model {model} --prompt hi --skip-ratio 0.3 --skip-set x.json", "not both"),
    "corrupt skip set": ("--model {model} --prompt hi --skip-set {tmp}/bad.json", "corrupt skip set"),
    "index out of range": ("--model {model} --prompt hi --skip-set {tmp}/oor.json", "layer index 9 out of range"),
    "negative temperature": ("--model {model} --prompt hi --temperature -1", "--temperature: must be >= 0"),
    "top-p zero": ("--model {model} --prompt hi --top-p 0", "--top-p: must be in (0, 1]"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_errors_are_one_line(capsys, local_llama_dir, tmp_path, case):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "oor.json").write_text(json.dumps({"attention": [9], "mlp": [], "num_layers": 6}))
    args, message = BAD_CASES[case]
    code, _, err = run_cli(capsys, "generate", *args.format(model=local_llama_dir, tmp=tmp_path).split())
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swiftlab: error:") and message in lines[0], err


def test_unsupported_architecture_from_cli(capsys, tmp_path):
    from transformers import BloomConfig

    BloomConfig(architectures=["BloomForCausalLM"]).save_pretrained(tmp_path)
    code, _, err = run_cli(capsys, "generate", "--model", str(tmp_path), "--prompt", "x")
    assert code == 2 and "unsupported architecture BloomForCausalLM" in err and "Traceback" not in err


def test_python_dash_m_end_to_end(local_llama_dir):
    """The real entry point in a fresh interpreter: JSON on stdout, clean exit."""
    proc = subprocess.run([sys.executable, "-m", "swiftlab", "generate", "--model", str(local_llama_dir),
                           "--prompt", "abc", "--max-new-tokens", "5", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["token_ids"]) == 5
    bad = subprocess.run([sys.executable, "-m", "swiftlab", "generate", "--model", "nope/nope", "--prompt", "x"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_optimize_then_generate_with_the_cached_set(capsys, local_long_llama_dir, tmp_path):
    store = tmp_path / "store.json"
    code, out, _ = run_cli(capsys, "optimize", "--model", str(local_long_llama_dir), "--task", "story",
                           "--prompts", "2", "--max-new-tokens", "24", "--window", "8", "--bayes-interval", "3",
                           "--store", str(store), "--json", "--unbudgeted")
    assert code == 0
    d = json.loads(out)
    assert {"skip_set", "matchness", "iterations", "bayes_iterations", "stopped_because", "trajectory"} <= set(d)
    assert d["iterations"] == len(d["trajectory"]) - 1 and d["bayes_iterations"] >= 1
    assert json.loads(store.read_text())[f"{local_long_llama_dir.name}_story"]["attention"] == d["skip_set"]["attention"]
    code, out, _ = run_cli(capsys, "generate", "--model", str(local_long_llama_dir), "--prompt", "hi",
                           "--task", "story", "--store", str(store), "--max-new-tokens", "5", "--json")
    assert code == 0 and json.loads(out)["skip_set"]["attention"] == d["skip_set"]["attention"]
    code, _, err = run_cli(capsys, "generate", "--model", str(local_long_llama_dir), "--prompt", "hi",
                           "--task", "code", "--store", str(store))
    assert code == 2 and "no cached skip set" in err


def test_verify_flag(capsys, local_llama_dir):
    base = ["generate", "--model", str(local_llama_dir), "--prompt", "abc", "--max-new-tokens", "16", "--json"]
    outs = {}
    for verify in ("tree", "chain"):
        code, out, _ = run_cli(capsys, *base, "--verify", verify, "--skip-ratio", "0.75")
        outs[verify] = json.loads(out)
        assert code == 0 and outs[verify]["verify"] == verify
    assert outs["tree"]["token_ids"] == outs["chain"]["token_ids"]
    assert len(outs["tree"]["tree_size_per_step"]) == outs["tree"]["steps"]


def test_speed_flags_reach_the_engine_and_keep_the_output(capsys, local_llama_dir, monkeypatch):
    import swiftlab.engine.drafters as drafters

    seen = []
    real = drafters.lean_drafter
    monkeypatch.setattr(drafters, "lean_drafter",
                        lambda model, cache, dtype, **options: seen.append(dtype) or real(model, cache, dtype, **options))
    base = ["generate", "--model", str(local_llama_dir), "--prompt", "abc abc abc", "--max-new-tokens", "16", "--json",
            "--skip-ratio", "0.5"]
    outs = [json.loads(run_cli(capsys, *base, *flags)[1]) for flags in
            ([], ["--draft-dtype", "model"], ["--draft-dtype", "bfloat16", "--lookup", "4", "--no-fallback"])]
    assert seen == ["auto", "model", "bfloat16"]
    assert outs[0]["token_ids"] == outs[1]["token_ids"] == outs[2]["token_ids"]


def test_draft_dtype_choices_are_the_engines():
    from swiftlab.cli import build_parser
    from swiftlab.engine.leandraft import DRAFT_DTYPES

    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    assert tuple(next(a for a in generate._actions if a.dest == "draft_dtype").choices) == DRAFT_DTYPES


def test_bench_then_report(capsys, local_long_llama_dir, tmp_path):
    out, spec = tmp_path / "results.jsonl", tmp_path / "answers.jsonl"
    code, printed, _ = run_cli(capsys, "bench", "--model", str(local_long_llama_dir), "--task", "story",
                               "--prompts", "1", "--methods", "ar,uniform,hf-generate", "--max-new-tokens", "6",
                               "--out", str(out), "--specbench", str(spec))
    assert code == 0 and "| story | uniform |" in printed
    assert len(out.read_text().splitlines()) == 3 and len(spec.read_text().splitlines()) == 3
    code, printed, _ = run_cli(capsys, "report", str(out))
    assert code == 0 and "| story | hf-generate |" in printed
    code, _, err = run_cli(capsys, "bench", "--model", str(local_long_llama_dir), "--task", "story",
                           "--methods", "ar,warp-drive", "--out", str(out))
    assert code == 2 and "unknown method(s) warp-drive" in err


def test_bench_fresh_leaves_the_store_alone(capsys, local_long_llama_dir, tmp_path):
    # --fresh is a measurement of the cold start: it neither reads nor writes the skip-set store
    store = tmp_path / "store.json"
    code, printed, _ = run_cli(capsys, "bench", "--model", str(local_long_llama_dir), "--task", "story",
                               "--prompts", "2", "--methods", "ar,swift", "--max-new-tokens", "24", "--fresh",
                               "--store", str(store), "--out", str(tmp_path / "r.jsonl"))
    assert code == 0 and "| story | swift |" in printed
    assert not store.exists() and "stored to" not in printed
