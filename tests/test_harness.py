"""The benchmark harness: metrics on a hand-made results file, and a real interleaved run."""

import json

import pytest

from swiftlab import SwiftlabError, load_model
from swiftlab.search.skipsearch import SearchConfig
from swiftlab.analysis.harness import BenchLine, read_lines, run_bench, summarize, summary_table, to_specbench


def line(method, prompt, repeat, tokens, wall, lengths=None, drafted=None, ids=(1, 2, 3)):
    return BenchLine(method, "story", prompt, repeat, tokens, wall, len(lengths) if lengths else None, lengths,
                     drafted, None, list(ids))


def test_metrics_on_a_hand_made_file(tmp_path):
    lines = [
        line("ar", "p1", 0, 10, 1.0), line("ar", "p1", 1, 10, 2.0), line("ar", "p2", 0, 10, 1.0),
        line("swift", "p1", 0, 10, 0.5, [3, 3, 4], [3, 4, 3]), line("swift", "p1", 1, 10, 0.25, [3, 3, 4], [3, 4, 3]),
        line("swift", "p2", 0, 10, 0.5, [5, 5], [4, 6], ids=(9, 9)),
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(l.__dict__) + "\n" for l in lines))
    rows = {r["method"]: r for r in summarize(read_lines(path))}
    # ar: p1 median(10, 5) = 7.5 tok/s, p2 10 -> mean 8.75; swift: p1 median(20, 40) = 30, p2 20 -> 25
    assert rows["ar"]["tokens_per_s"] == pytest.approx(8.75)
    assert rows["swift"]["speedup"] == pytest.approx(25 / 8.75)
    assert rows["swift"]["mean_accepted_tokens"] == pytest.approx(sum([3, 3, 4, 3, 3, 4, 5, 5]) / 8)
    # accepted drafts (length - 1) over drafted tokens: (7 + 7 + 8) / (10 + 10 + 10)
    assert rows["swift"]["acceptance_rate"] == pytest.approx(22 / 30)
    assert rows["swift"]["identical_to_ar"] is False  # p2 differs
    assert "| story | swift |" in summary_table(summarize(lines))
    assert rows["swift"]["bound"] is None  # no draft/verify timings recorded: no bound claimed


def test_bound_and_the_faster_autoregressive_baseline():
    lines = [line("ar", "p1", 0, 10, 1.0), line("hf-generate", "p1", 0, 10, 0.8),
             line("swift", "p1", 0, 10, 0.5, [5, 5], [4, 4])]
    lines[-1].timings_s = {"draft": 0.2, "verify": 0.2, "optimize": 0.05, "other": 0.05}
    rows = {r["method"]: r for r in summarize(lines)}
    assert rows["swift"]["speedup"] == pytest.approx(2.0)  # 20 tok/s over ar's 10
    assert rows["swift"]["speedup_vs_best_ar"] == pytest.approx(20 / 12.5)  # generate is the faster baseline
    assert rows["swift"]["bound"] == pytest.approx(2.5)  # 10 tokens in 0.4 s of model passes: 25 tok/s
    assert rows["ar"]["bound"] is None and rows["hf-generate"]["speedup"] == pytest.approx(1.25)
    table = summary_table(list(rows.values()))
    assert "| story | swift | 20.0 | 2.00x | 1.60x | 2.50x | 80% | 5.00 |" in table


def test_corrupt_results_file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"method": "ar"}\n')
    with pytest.raises(SwiftlabError, match="line 1 is not a bench result"):
        read_lines(path)


def test_real_run_interleaves_and_appends(local_long_llama_dir, tmp_path):
    model, tokenizer = load_model(local_long_llama_dir)
    out = tmp_path / "results.jsonl"
    methods = ["ar", "swift", "uniform", "early-exit", "hf-generate", "hf-early-exit", "hf-prompt-lookup", "hf-static"]
    lines = run_bench(model, tokenizer, task="story", prompts=2, methods=methods, model_name="tiny",
                      repeats=2, max_new_tokens=12, out=out, progress=False,
                      search=SearchConfig(window=4))
    assert len(lines) == len(methods) * 2 * 2 and len(read_lines(out)) == len(lines)
    first_methods = [l.method for l in lines[::len(methods)]]
    assert len(set(first_methods)) > 1  # the order rotates
    rows = summarize(lines)
    assert all(r["identical_to_ar"] for r in rows)  # every method is lossless
    assert set(methods) <= {r["method"] for r in rows} <= set(methods) | {"swift (accelerating)"}
    assert {l.phase for l in lines if l.method == "swift"} <= {"optimize", "accelerate"}
    assert all(l.phase is None for l in lines if l.method != "swift")
    spec = to_specbench(lines, tokenizer, "tiny")
    assert spec[0]["choices"][0]["new_tokens"] == [12] and "question_id" in spec[0]


def test_acceleration_phase_row_compares_on_its_own_prompts():
    lines = [line("ar", "p1", 0, 10, 1.0), line("ar", "p2", 0, 10, 2.0),
             line("swift", "p1", 0, 10, 1.0, [2] * 5, [2] * 5), line("swift", "p2", 0, 10, 0.5, [2] * 5, [2] * 5)]
    lines[2].timings_s = {"draft": 0.3, "verify": 0.3, "optimize": 0.3, "other": 0.1}
    lines[2].phase = "optimize"  # still searching
    lines[3].timings_s = {"draft": 0.2, "verify": 0.2, "optimize": 0.0, "other": 0.1}
    lines[3].phase = "accelerate"  # search stopped
    rows = {r["method"]: r for r in summarize(lines)}
    assert rows["swift"]["speedup"] == pytest.approx(15 / 7.5)
    accel = rows["swift (accelerating)"]
    assert accel["prompts"] == 1 and accel["speedup"] == pytest.approx(20 / 5)  # p2 only, against ar on p2


def test_exit_layer_per_method():
    from swiftlab.analysis.harness import make_runners
    from tiny_models import tiny_model

    model = tiny_model("llama")
    runners = make_runners(model, ["early-exit:1", "early-exit:2", "hf-early-exit:1"], task="story", model_name="t")
    assert set(runners) == {"early-exit:1", "early-exit:2", "hf-early-exit:1"}
    ran = {name: runners[name]([1, 2, 3], 2).skip_set for name in ("early-exit:1", "early-exit:2")}
    assert ran["early-exit:1"] != ran["early-exit:2"]  # each method drafts with its own exit layer
    for bad, message in (("early-exit:0", "from 1 to"), ("early-exit:x", "from 1 to"), ("ar:2", "only early-exit")):
        with pytest.raises(SwiftlabError, match=message):
            make_runners(model, [bad], task="story", model_name="t")


def test_pass_cost_bound_prices_each_kind_of_step():
    from swiftlab.analysis.harness import pass_cost_bound

    full = lambda k: 0.010 * (1 + 0.05 * (k - 1))  # a full pass over k tokens: 10 ms, +5% per extra token
    draft = 0.004
    swift = line("swift", "p1", 0, 12, 0.5, [1, 4, 5, 1, 1], [0, 3, 5, 0, 0])
    swift.step_kinds = ["prefill", "skip", "lookup", "ar", "skip"]
    swift.tree_size_per_step = [0, 4, 5, 0, 0]  # the last skip step drafted nothing (the output's last token)
    cost = (3 * draft + full(5)) + full(6) + full(1) + (0 * draft + full(1))
    assert pass_cost_bound([swift], full, draft) == pytest.approx(11 * full(1) / cost)
    old = line("swift", "p1", 0, 12, 0.5, [1, 4], [0, 3])  # a results file from before step kinds were kept
    assert pass_cost_bound([old], full, draft) is None


def test_a_bench_line_times_the_whole_call():
    """A decode's clock starts at its prompt pass; what a runner does before or after it (setting up
    drafters, a stream's round of pass costs after a short prompt) must still count in the line."""
    import time

    from swiftlab.analysis.harness import decode_turns
    from swiftlab.engine.records import DecodeResult
    from swiftlab.tasks.base import Example

    def run(ids, n):
        time.sleep(0.05)  # work outside the decode's own clock
        timings = {"prefill": 0.001, "draft": 0.0, "verify": 0.002, "optimize": 0.0, "other": 0.0}
        return DecodeResult(method="swift", prompt_ids=list(ids), token_ids=[5, 6], wall_s=0.003, timings_s=timings)

    _, tokenizer = load_model("lab")

    [result] = decode_turns(run, tokenizer, Example(task="t", id="a", prompt="hi", reference=""), 2, chat="off")
    assert result.wall_s >= 0.05
    assert abs(sum(result.timings_s.values()) - result.wall_s) < 1e-9  # the difference is "other" time
    assert result.timings_s["prefill"] == 0.001 and result.timings_s["other"] >= 0.047


def test_compiled_static_generate_asks_to_compile_on_every_device():
    """transformers compiles a static-cache generate() by itself only on accelerators: hf-static-compile's options
    must ask for it, or on a CPU it would silently time the eager static cache under the compiled name."""
    from swiftlab.analysis.harness import static_generate_options

    assert static_generate_options(compiled=False) == {"cache_implementation": "static"}
    options = static_generate_options(compiled=True)
    assert options["cache_implementation"] == "static" and options["compile_config"]._compile_all_devices


def test_the_best_plain_decoding_includes_the_compiled_ones():
    lines = [line("ar", "p1", 0, 10, 1.0), line("hf-generate", "p1", 0, 10, 0.8), line("ar-compile", "p1", 0, 10, 0.4),
             line("hf-static-compile", "p1", 0, 10, 0.5), line("swift", "p1", 0, 10, 0.25, [5, 5], [4, 4])]
    rows = {r["method"]: r for r in summarize(lines)}
    assert rows["swift"]["speedup"] == pytest.approx(4.0)  # 40 tok/s over eager ar's 10
    assert rows["swift"]["speedup_vs_best_ar"] == pytest.approx(40 / 25)  # ar-compile, the fastest plain decoding



def test_compiled_methods_compile_before_the_first_prompt(local_long_llama_dir, monkeypatch):
    # a stream is not warmed up and the AR warm-up compiles no tree graph: compiling inside a stream's first
    # prompt put 32-136 s into its cold start (measured)
    import swiftlab.analysis.harness as harness

    class Compiling(Exception):
        pass

    def compile_passes(model, progress=True):
        raise Compiling

    decoded = []
    real_decode = harness.decode
    monkeypatch.setattr(harness, "compile_passes", compile_passes)
    monkeypatch.setattr(harness, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    model, tokenizer = load_model(local_long_llama_dir)
    options = dict(task="story", prompts=1, model_name="tiny", max_new_tokens=4, progress=False)
    with pytest.raises(Compiling):
        run_bench(model, tokenizer, methods=["ar", "swift+lookup-compile"], **options)
    assert decoded == []  # before any warm-up or prompt
    assert run_bench(model, tokenizer, methods=["ar", "swift+lookup"], **options) and decoded  # eager: no compile
