"""Every bad command line ends the same way: exit status 2, exactly one `swiftlab: error:` line that names
the problem, no traceback and no `internal error`. The table walks the inputs of issue 17 and more
(the closing note of that issue lists what was tried beyond it)."""

import json
import shutil

import pytest
import torch

from swiftlab.cli import main

NEEDS_NO_CUDA = "cuda-missing"

# name: (argv with {model} {long} {files} {unwritable} filled in, message the error line must contain)
CASES = {
    # ----- the list: internal errors that must be clear errors
    "truncated safetensors": ("generate --model {files}/truncated --prompt hi", "weights file is damaged or incomplete"),
    "device bogus": ("generate --model {model} --prompt hi --device bogus", "unknown device 'bogus'"),
    "device cuda without CUDA": ("generate --model {model} --prompt hi --device cuda", "CUDA is not available"),
    "prompt not UTF-8": ("generate --model {model} --prompt caf\udce9", "prompt is not valid UTF-8"),
    "skip-set file not UTF-8": ("generate --model {model} --prompt hi --skip-set {files}/latin1.json",
                                "is not UTF-8 text"),
    "temperature nan": ("generate --model {model} --prompt hi --temperature nan", "--temperature: must be a finite"),
    "bench prompts 0": ("bench --model {long} --task story --prompts 0", "--prompts: must be >= 1, got 0"),
    "bench methods comma": ("bench --model {long} --task story --methods ,", "names no method"),
    "bench out missing folder": ("bench --model {long} --task story --out {files}/nowhere/r.jsonl",
                                 "folder {files}/nowhere does not exist"),
    "bench out unwritable": ("bench --model {long} --task story --out {unwritable}/r.jsonl", "cannot write"),
    "bench out a folder": ("bench --model {long} --task story --out {files}", "is a folder"),
    "specbench on a folder": ("bench --model {long} --task story --out {files}/r.jsonl --specbench {files}",
                              "--specbench file {files} is a folder"),
    "report missing file": ("report {files}/missing.jsonl", "does not exist"),
    "report a folder": ("report {files}", "is a folder, not a file"),
    "report a binary file": ("report {files}/binary.jsonl", "is not UTF-8 text"),
    "report wrong field types": ("report {files}/wrong-types.jsonl", "field 'new_tokens' should be an integer"),
    "figures record with wrong fields": ("figures --from {files}/bad-records --out {files}/figs",
                                         "importance.json: not a valid importance record"),
    "figures out an existing file": ("figures --from {files}/bad-records --out {files}/binary.jsonl",
                                     "is a file; figures go in a folder"),
    "optimize out unwritable": ("optimize --model {long} --task story --out {unwritable}/set.json", "cannot write"),
    "demo repeats 0": ("demo --model {model} --repeats 0", "--repeats: must be >= 1"),
    "tasks evaluate n 0": ("tasks evaluate --model {model} -n 0", "-n: must be >= 1"),
    # ----- the misleading messages
    "string num_layers": ("generate --model {model} --prompt hi --skip-set {files}/string-layers.json",
                          "'num_layers' must be a positive integer, got '6'"),
    "figures neither source": ("figures --out {files}/figs", "give --from DIR (redraw saved records) or --model M"),
    "swiftlab-format file with #KEY": ("generate --model {model} --prompt hi --skip-set {files}/own.json#tiny",
                                       "holds a single skip set (swiftlab's format)"),
    "empty model folder": ("generate --model {files}/empty-model --prompt hi", "has no config.json"),
    # ----- the silently-wrong inputs, now refused
    "bench exit-layer 0": ("bench --model {long} --task story --exit-layer 0", "--exit-layer: must be >= 1"),
    "bench repeats 0": ("bench --model {long} --task story --repeats 0", "--repeats: must be >= 1"),
    "probe prompts 0": ("probe importance --model {model} --prompts 0 --out {files}/p.json", "--prompts: must be >= 1"),
    "optimize prompts 0": ("optimize --model {long} --task story --prompts 0", "--prompts: must be >= 1"),
    "stored 16-layer set on a 6-layer model": ("generate --model {model} --prompt hi --task story --store "
                                               "{files}/store16.json", "16-layer model, this model has 6 layers"),
    "config layers disagree with weights": ("generate --model {files}/mismatch --prompt hi",
                                            "does not match its weights"),
    # ----- beyond the list (see the closing note)
    "max-new-tokens 0": ("generate --model {model} --prompt hi --max-new-tokens 0", "--max-new-tokens: must be >= 1"),
    "max-new-tokens text": ("generate --model {model} --prompt hi --max-new-tokens ten", "expected a whole number"),
    "top-k negative": ("generate --model {model} --prompt hi --top-k -1", "--top-k: must be >= 0"),
    "top-p above 1": ("generate --model {model} --prompt hi --top-p 1.5", "--top-p: must be in (0, 1]"),
    "temperature inf": ("generate --model {model} --prompt hi --temperature inf", "must be a finite number"),
    "epsilon nan": ("generate --model {model} --prompt hi --epsilon nan", "--epsilon: must be a finite"),
    "epsilon 2": ("generate --model {model} --prompt hi --epsilon 2", "--epsilon: must be in [0, 1]"),
    "max-draft 0": ("generate --model {model} --prompt hi --max-draft 0", "--max-draft: must be >= 1"),
    "lookup negative": ("generate --model {model} --prompt hi --lookup -2", "--lookup: must be >= 0"),
    "skip-ratio nan": ("generate --model {model} --prompt hi --skip-ratio nan", "--skip-ratio: must be a finite"),
    "seed negative": ("generate --model {model} --prompt hi --seed -1", "--seed: must be >= 0"),
    "skip-set is a folder": ("generate --model {model} --prompt hi --skip-set {files}", "is a folder, not a file"),
    "store is a folder": ("generate --model {model} --prompt hi --task story --store {files}",
                          "is a folder, not a file"),
    "optimize window 0": ("optimize --model {long} --task story --window 0", "--window: must be >= 1"),
    "optimize max-score nan": ("optimize --model {long} --task story --max-score nan", "must be a finite number"),
    "optimize store corrupt": ("optimize --model {long} --task story --store {files}/corrupt-store.json",
                               "corrupt skip-set store"),
    "optimize store a folder": ("optimize --model {long} --task story --store {files}", "is a folder"),
    "probe unknown name": ("probe nonsense --model {model} --out {files}/p.json", "unknown probe 'nonsense'"),
    "probe out a folder": ("probe importance --model {model} --out {files}", "is a folder"),
    "figures from a file": ("figures --from {files}/binary.jsonl --out {files}/figs", "no such folder"),
    "report empty file": ("report {files}/empty.jsonl", "holds no bench results"),
    "report a JSON list line": ("report {files}/list-line.jsonl", "a JSON object is expected"),
    "report corrupt middle line": ("report {files}/corrupt-middle.jsonl", "line 1 is not a bench result"),
    "tasks show n 0": ("tasks show story -n 0", "-n: must be >= 1"),
    "train-lab steps 0": ("train-lab --out {files}/run --steps 0", "--steps: must be >= 1"),
    "train-lab lr nan": ("train-lab --out {files}/run --lr nan", "--lr: must be a finite"),
    "train-lab mix nan": ("train-lab --out {files}/run --mix story=nan", "share of 'story' must be a finite number"),
    "no command": ("", "the following arguments are required: command"),
    "unknown option": ("generate --model {model} --prompt hi --warp 9", "unrecognized arguments: --warp 9"),
    # ----- issue 29's cases ({full}: a 64 KiB tmpfs holding a store and a results file, filled to the last byte)
    "skip-set file nested 100k deep": ("generate --model {model} --prompt hi --skip-set {files}/deep.json",
                                       "JSON nested too deeply"),
    "generate --task a path": ("generate --model {model} --prompt hi --task ../../x --store {files}/store16.json",
                               "'../../x' is not a task `optimize` can search"),
    "optimize store on a full disk": ("optimize --model {long} --task story --prompts 2 --max-new-tokens 40 --window 8 "
                                      "--unbudgeted --store {full}/store.json", "no space left on the device (0 bytes free"),
    "bench out on a full disk": ("bench --model {long} --task story --prompts 1 --repeats 1 --methods ar "
                                 "--max-new-tokens 4 --out {full}/results.jsonl", "no space left on the device (0 bytes free"),
    "bench early-exit layer text": ("bench --model {long} --task story --methods ar,early-exit:abc --out "
                                    "{files}/r.jsonl", "exit layer must be a whole number"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory, local_llama_dir):
    return make_bad_files(tmp_path_factory.mktemp("bad-inputs"), local_llama_dir)


def make_bad_files(d, local_llama_dir):
    truncated = shutil.copytree(local_llama_dir, d / "truncated")
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    mismatch = shutil.copytree(local_llama_dir, d / "mismatch")
    config = json.loads((mismatch / "config.json").read_text())
    (mismatch / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 4}))
    (d / "empty-model").mkdir()
    (d / "latin1.json").write_bytes(b'{"attention": [1], "mlp": [], "num_layers": 6, "by": "Jos\xe9"}')
    (d / "string-layers.json").write_text(json.dumps({"attention": [1], "mlp": [], "num_layers": "6"}))
    (d / "own.json").write_text(json.dumps({"attention": [1], "mlp": [], "num_layers": 6}))
    (d / "store16.json").write_text(json.dumps({f"{local_llama_dir.name}_story": {
        "attention": [2, 3], "mlp": [4], "num_layers": 16, "matchness": 0.97}}))  # indices that fit 6 layers too
    (d / "corrupt-store.json").write_text('{"x_story": {"attention": [1,')
    (d / "deep.json").write_text("[" * 100_000)
    (d / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (d / "wrong-types.jsonl").write_text(json.dumps(
        {"method": "ar", "task": "story", "prompt_id": "p1", "repeat": 0, "new_tokens": "ten", "wall_s": 1.0,
         "steps": 10, "accepted_lengths": None, "drafted_per_step": None, "skip_set": None, "token_ids": []}) + "\n")
    (d / "empty.jsonl").write_text("")
    (d / "list-line.jsonl").write_text("[1, 2, 3]\n")
    (d / "corrupt-middle.jsonl").write_text('{"method": ar}\n{}\n')
    records = d / "bad-records"
    records.mkdir()
    (records / "importance.json").write_text(json.dumps({"probe": "importance", "record": {
        "task": "story", "num_layers": "six", "prompts": 2, "window": 8, "attention_drop": [0.1], "mlp_drop": [0.2],
        "attention_kl": [0.0], "mlp_kl": [0.0]}}))
    return d


def unwritable_folder(tmp_path):
    from test_store import unwritable_folder as folder

    return folder(tmp_path)


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory):
    """A 64 KiB tmpfs whose store and results file hold one record each, then filled to the last byte
    (None where no tmpfs can be mounted here)."""
    from test_disk_errors import KEPT, LINE, fill_up, mounted_tmpfs
    from swiftlab.support.storage import append_line, atomic_write_json

    with mounted_tmpfs(tmp_path_factory.mktemp("full")) as mount:
        if mount is not None:
            atomic_write_json(mount / "store.json", KEPT)
            append_line(mount / "results.jsonl", LINE)
            fill_up(mount)
        yield mount


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_error(capsys, case, files, local_llama_dir, local_long_llama_dir, tmp_path, full_disk):
    template, message = CASES[case]
    if case == "device cuda without CUDA" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if "{full}" in template and full_disk is None:
        pytest.skip("cannot mount a tmpfs here")
    fill = {"model": local_llama_dir, "long": local_long_llama_dir, "files": files,
            "unwritable": unwritable_folder(tmp_path), "full": full_disk}
    argv = [part.format(**fill) for part in template.split()]
    code = main(argv)
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("swiftlab: error:")]
    assert code == 2, err
    assert len(errors) == 1 and message.format(**fill) in errors[0], err
    assert "Traceback" not in err and "internal error" not in err


def test_ctrl_c_during_start_up_is_one_line(local_llama_dir):
    """SIGINT while torch and transformers are still importing: one line, exit 130, no traceback."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "swiftlab", "generate", "--model", str(local_llama_dir),
                             "--prompt", "hi"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as at a terminal: a suite started in the background (`cmd &`) inherits SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.8)  # the heavy imports take seconds; the interpreter itself is up by now
    assert proc.poll() is None, "the command finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["swiftlab: interrupted"], err


def test_ctrl_c_during_the_heavy_imports_exits_at_once_and_leaves_other_handlers_alone():
    """Deterministic twin of the test above: SIGINT inside the import phase, where a KeyboardInterrupt raised
    in torch's C++ import code would abort the process (-6), exits 130 with the one line."""
    import signal
    import subprocess
    import sys

    code = ("import os, signal\n"
            "from swiftlab.cli import _interrupt_exits_now\n"
            "with _interrupt_exits_now():\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    import time; time.sleep(5)\n"
            "print('not reached')\n")
    def at_a_terminal():  # a suite started in the background (`cmd &`) inherits SIGINT ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=at_a_terminal)
    assert proc.returncode == 130 and proc.stderr == "swiftlab: interrupted\n" and proc.stdout == ""
    # outside it, Python's own handler again; where SIGINT was ignored (a background job), still ignored
    code = ("import signal\n"
            "from swiftlab.cli import _interrupt_exits_now\n"
            "with _interrupt_exits_now():\n"
            "    inside = signal.getsignal(signal.SIGINT)\n"
            "assert inside is not signal.default_int_handler\n"
            "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "with _interrupt_exits_now():\n"
            "    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=at_a_terminal)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


# ----- nothing lost, nothing silently wrong: the commands' files --------------------------------------
def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_destinations_are_checked_before_any_model_loads(capsys, monkeypatch, tmp_path, local_long_llama_dir):
    import swiftlab.cli as cli

    monkeypatch.setattr(cli, "_load", lambda args: pytest.fail("loaded a model for a run that could not be saved"))
    corrupt = tmp_path / "store.json"
    corrupt.write_text("{")
    for argv in (["optimize", "--task", "story", "--store", corrupt],
                 ["optimize", "--task", "story", "--out", tmp_path / "nowhere" / "x" / "set.json", "--store", corrupt],
                 ["bench", "--task", "story", "--out", tmp_path / "missing" / "r.jsonl"],
                 ["probe", "importance", "--out", tmp_path]):
        if "--out" in argv and "nowhere" in str(argv[argv.index("--out") + 1]):
            continue  # a folder still to be created is fine for --out; the store is then not used
        code, _, err = run(capsys, *argv, "--model", local_long_llama_dir)
        assert code == 2 and err.startswith("swiftlab: error:"), (argv, err)
    assert corrupt.read_text() == "{"


def test_optimize_that_could_not_search_stores_nothing(capsys, tmp_path, local_long_llama_dir):
    store = tmp_path / "store.json"
    key = f"{local_long_llama_dir.name}_story"
    searched = {key: {"attention": [2, 3], "mlp": [4], "num_layers": 6, "matchness": 0.97, "iterations": 40}}
    store.write_text(json.dumps(searched))
    for prompts, tokens in (("1", "16"), ("2", "8")):  # fewer tokens than the 32-token window
        code, out, err = run(capsys, "optimize", "--model", local_long_llama_dir, "--task", "story", "--prompts",
                             prompts, "--max-new-tokens", tokens, "--store", store)
        assert code == 2 and "the search did not run" in err and "nothing was saved" in err, err
        assert "Traceback" not in err and "internal error" not in err
        assert json.loads(store.read_text()) == searched


def test_optimize_keeps_a_better_stored_set_unless_asked(capsys, tmp_path, local_long_llama_dir):
    store = tmp_path / "store.json"
    key = f"{local_long_llama_dir.name}_story"
    best = {key: {"attention": [2, 3], "mlp": [4], "num_layers": 6, "matchness": 1.0, "iterations": 40}}
    store.write_text(json.dumps(best))
    argv = ["optimize", "--model", local_long_llama_dir, "--task", "story", "--prompts", "2", "--max-new-tokens",
            "24", "--window", "8", "--bayes-interval", "3", "--max-steps", "4", "--store", store, "--json",
            "--unbudgeted"]  # two short prompts: within a 10% budget the search would hardly run
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    d = json.loads(out)
    assert d["saved_to"] is None and "scored matchness 1.000" in d["not_saved_because"]
    assert "not stored" in err and json.loads(store.read_text()) == best
    code, out, err = run(capsys, *argv, "--replace")
    assert code == 0 and json.loads(out)["saved_to"].endswith(f"[{key}]")
    stored = json.loads(store.read_text())[key]
    assert stored["matchness"] == json.loads(out)["matchness"] and stored["iterations"] >= 1


def _bench(capsys, model_dir, out, methods="ar,uniform"):
    return run(capsys, "bench", "--model", model_dir, "--task", "story", "--prompts", "1", "--methods", methods,
               "--max-new-tokens", "6", "--out", out)


def test_bench_appends_on_a_fresh_line_and_report_skips_a_truncated_one(capsys, tmp_path, local_long_llama_dir):
    out = tmp_path / "results.jsonl"
    code, _, err = _bench(capsys, local_long_llama_dir, out)
    assert code == 0, err
    complete = out.read_text()
    out.write_text(complete + complete.splitlines()[0][:40])  # a run killed mid-write
    code, printed, err = run(capsys, "report", out)  # the cut-off last line is named and left out
    assert code == 0 and "line 3 is a truncated record" in err and "| story | uniform |" in printed, err
    code, _, err = _bench(capsys, local_long_llama_dir, out)
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(l) for l in lines[:2] + lines[3:])  # the new records start afresh
    code, printed, err = run(capsys, "report", out, "--json")
    assert code == 0 and "line 3 is a truncated record" in err
    rows = json.loads(printed)
    assert {r["method"] for r in rows} == {"ar", "uniform"} and all(r["prompts"] == 1 for r in rows)


def test_records_name_model_and_machine_and_report_keeps_models_apart(capsys, tmp_path, local_long_llama_dir):
    out = tmp_path / "results.jsonl"
    local_llama_dir = shutil.copytree(local_long_llama_dir, tmp_path / "another-model")  # same weights, another name
    for model_dir in (local_long_llama_dir, local_llama_dir):
        code, _, err = _bench(capsys, model_dir, out)
        assert code == 0, err
    records = [json.loads(l) for l in out.read_text().splitlines()]
    assert {r["model"] for r in records} == {str(local_llama_dir), str(local_long_llama_dir)}
    assert all(r["machine"] and r["machine"].startswith("cpu") for r in records)
    code, printed, err = run(capsys, "report", out)
    assert code == 0, err
    assert f"model {local_llama_dir} on cpu" in printed and f"model {local_long_llama_dir} on cpu" in printed
    assert printed.count("| story | uniform |") == 2  # one row per model, never a blend
    rows = json.loads(run(capsys, "report", out, "--json")[1])
    assert sorted(r["model"] for r in rows if r["method"] == "uniform") == sorted(
        [str(local_llama_dir), str(local_long_llama_dir)])
    from swiftlab import SwiftlabError
    from swiftlab.analysis.harness import read_lines, summarize

    with pytest.raises(SwiftlabError, match="these results mix"):
        summarize(read_lines(out))


def test_figures_from_names_every_unreadable_record(capsys, tmp_path):
    from swiftlab.analysis.experiments import save
    from swiftlab.analysis.probes import ImportanceRecord

    records = tmp_path / "records"
    good = ImportanceRecord("story", 6, 2, 8, [0.1] * 6, [0.2] * 6, [0.0] * 6, [0.0] * 6)
    save(records / "importance-story.json", "importance", good)
    (records / "redundancy-story.json").write_text('{"probe": "redundancy", "record": {"task": "st')  # cut short
    (records / "sweep-story.json").write_text(json.dumps({"probe": "sweep", "record": {"task": "story"}}))
    (records / "notes.json").write_text(json.dumps({"about": "not a probe record"}))  # other JSON may live there
    code, _, err = run(capsys, "figures", "--from", records, "--out", tmp_path / "figs")
    assert code == 2 and "2 record(s)" in err and "redundancy-story.json" in err and "sweep-story.json" in err, err
    assert "notes.json" not in err and "importance-story.json" not in err
    (records / "redundancy-story.json").unlink()
    (records / "sweep-story.json").unlink()
    code, printed, err = run(capsys, "figures", "--from", records, "--out", tmp_path / "figs")
    assert code == 0 and "importance.html" in printed, err


def test_top_p_with_greedy_decoding_says_it_is_ignored(capsys, local_llama_dir):
    code, _, err = run(capsys, "generate", "--model", local_llama_dir, "--prompt", "hi", "--max-new-tokens", "3",
                       "--top-p", "0.5", "--json")
    assert code == 0 and "--top-p and --top-k only apply when sampling" in err


@pytest.mark.parametrize("status", [0, 2, 130])
def test_the_entry_point_exits_with_mains_status(monkeypatch, status):
    # 130 (interrupted) leaves at once through os._exit: the interpreter's shutdown can turn it into -2
    import swiftlab.cli as cli

    class Left(Exception):  # os._exit never returns
        pass

    def fake_exit(code):
        raise Left(code)

    monkeypatch.setattr(cli, "main", lambda: status)
    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    with pytest.raises(Left if status == 130 else SystemExit) as left:
        cli.run()
    assert (left.value.args[0] if status == 130 else left.value.code) == status
