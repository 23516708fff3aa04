"""The lab-model trainer: seeded, resumable without repeating data, exports a loadable model."""

import json
from dataclasses import replace

import pytest
import torch

from swiftlab import SwiftlabError, load_model
from swiftlab.models.train import TrainConfig, batch_for_step, export, read_log, train

TINY = TrainConfig(layers=3, hidden=32, intermediate=64, heads=2, vocab_size=400, seq_len=64, batch_size=2,
                   steps=4, warmup=2, eval_every=2, tokenizer_docs=300, bf16=False)


def test_batches_are_a_function_of_seed_and_step(tmp_path):
    train(tmp_path / "a", replace(TINY, steps=1), progress=False)
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(tmp_path / "a")
    assert torch.equal(batch_for_step(TINY, tok, 5), batch_for_step(TINY, tok, 5))
    assert not torch.equal(batch_for_step(TINY, tok, 5), batch_for_step(TINY, tok, 6))
    assert batch_for_step(TINY, tok, 0).shape == (2, 64)


def test_resume_equals_one_run_and_export_loads(tmp_path):
    train(tmp_path / "once", TINY, progress=False)
    # Interrupt a second run right after its first checkpoint (step 2), then resume it to step 4.
    half = tmp_path / "twice"
    import swiftlab.models.train as t

    calls = {"n": 0}
    original = t._save_checkpoint

    def stop_after_first_checkpoint(*args, **kwargs):
        original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    t._save_checkpoint = stop_after_first_checkpoint
    try:
        with pytest.raises(KeyboardInterrupt):
            train(half, TINY, progress=False)
    finally:
        t._save_checkpoint = original
    assert [r["step"] for r in read_log(half)] == [1, 2]  # nothing recorded was lost
    train(half, TINY, progress=False)
    a = torch.load(tmp_path / "once" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(half / "checkpoint.pt", weights_only=True)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    log = read_log(half)
    assert [r["step"] for r in log] == [1, 2, 3, 4] and "heldout_loss" in log[-1]

    target = export(half, tmp_path / "exported")
    model, tokenizer = load_model(target)
    assert next(model.parameters()).dtype == torch.float16  # shipped small
    assert model.config.num_hidden_layers == 3
    with pytest.raises(SwiftlabError, match="different configuration"):
        train(half, replace(TINY, hidden=64, heads=2), progress=False)


def test_export_without_checkpoint(tmp_path):
    with pytest.raises(SwiftlabError, match="no checkpoint"):
        export(tmp_path, tmp_path / "x")


def test_model_card_counts_resumed_time_and_draws_a_curve():
    from swiftlab.models.modelcard import loss_curve_svg, training_seconds

    log = [{"step": 1, "loss": 5.0, "elapsed_s": 10.0}, {"step": 2, "loss": 4.0, "elapsed_s": 20.0,
                                                          "heldout_loss": 4.5},
           {"step": 3, "loss": 3.5, "elapsed_s": 8.0}, {"step": 4, "loss": 3.0, "elapsed_s": 16.0}]
    assert training_seconds(log) == 36.0
    svg = loss_curve_svg(log)
    assert svg.startswith("<svg") and svg.count("<polyline") == 2


def test_export_command_evaluates_and_writes_the_card(tmp_path, monkeypatch, capsys):
    import swiftlab.models.train as t
    from swiftlab.cli import _export_lab
    from swiftlab.analysis import quality

    for task in quality.NEW_TOKENS:
        monkeypatch.setitem(quality.NEW_TOKENS, task, 3)
    monkeypatch.setattr(t, "LAB_DIR", tmp_path / "lab")
    monkeypatch.setattr(t.export, "__defaults__", (tmp_path / "lab",))
    train(tmp_path / "run", TINY, progress=False)
    assert _export_lab(str(tmp_path / "run"), eval_n=1) == 0
    card = (tmp_path / "lab" / "README.md").read_text()
    assert "16 decoder layers" not in card and "3 decoder layers" in card
    assert "| reasoning (n=1) | exact_match |" in card and "loss_curve.svg" in card
    assert (tmp_path / "lab" / "loss_curve.svg").exists() and (tmp_path / "lab" / "quality.json").exists()
    assert "exported to" in capsys.readouterr().out


def test_warm_start_continues_from_the_earlier_weights_and_tokenizer(tmp_path, monkeypatch):
    import swiftlab.models.train as t
    from swiftlab.models.train import lineage

    train(tmp_path / "a", TINY, progress=False)
    # lr 0 leaves the weights exactly where the warm start put them (AdamW's decay scales with lr too)
    monkeypatch.setattr(t, "lr_at", lambda config, step: 0.0)
    second = replace(TINY, steps=2, seed=1, init_from=str(tmp_path / "a"), mix={"reasoning": 1.0})
    train(tmp_path / "b", second, progress=False)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert (tmp_path / "b" / "tokenizer.json").read_text() == (tmp_path / "a" / "tokenizer.json").read_text()
    assert [folder.name for folder, _ in lineage(tmp_path / "b")] == ["a", "b"]
    with pytest.raises(SwiftlabError, match="another shape"):
        train(tmp_path / "c", replace(second, hidden=64), progress=False)
    with pytest.raises(SwiftlabError, match="not a finished training run"):
        train(tmp_path / "d", replace(second, init_from=str(tmp_path / "nothing")), progress=False)


def test_model_card_of_a_warm_started_model_lists_both_stages(tmp_path):
    from swiftlab.models.modelcard import write_model_card

    train(tmp_path / "a", TINY, progress=False)
    with open(tmp_path / "a" / "log.jsonl", "a") as log:  # a step logged after a's last checkpoint: b never saw it
        log.write('{"step": 5, "loss": 1.0, "lr": 0.001, "elapsed_s": 99.0}\n')
    train(tmp_path / "b", replace(TINY, steps=2, init_from=str(tmp_path / "a")), progress=False)
    target = export(tmp_path / "b", tmp_path / "lab")
    card = write_model_card(target, tmp_path / "b", "| table |", [], {"hardware": "test CPU"}).read_text()
    assert "1. from scratch" in card and f"2. continued from `{tmp_path / 'a'}`" in card
    assert "In all: 6 steps" in card  # 4 + 2, one curve over both stages
    assert f"--init-from {tmp_path / 'a'}" in card
    import json

    assert len(json.loads((target / "training.json").read_text())["stages"]) == 2


@pytest.mark.parametrize("mix, message", [("poetry=1", "unknown task 'poetry'"), ("story=x", "must be a number"),
                                           ("story=-1", "negative"), ("story=0", "add up to zero")])
def test_mix_option_errors(mix, message):
    from swiftlab.cli import _parse_mix

    with pytest.raises(SwiftlabError, match=message):
        _parse_mix(mix)
    assert _parse_mix("story=0.5,code=0.5") == {"story": 0.5, "code": 0.5}


def test_fact_drills_come_from_training_articles_only():
    import random

    from swiftlab.tasks import get_examples, split_of
    from swiftlab.models.train import _documents

    drills = _documents("facts", random.Random(3))
    heldout = {ex.prompt.rsplit("Article: ", 1)[1].split("\nSummary:")[0] for ex in get_examples("summarization", 50)}
    for _ in range(200):
        doc = next(drills)
        article, answer = doc.removeprefix("Article: ").split("\nWho: ")
        assert split_of(article) == "train" and article not in heldout
        person = answer.split(".")[0]
        assert article.startswith(person + ", a ")  # the drill's answers are the article's own facts
    with pytest.raises(SwiftlabError, match="unknown corpus part"):
        next(_documents("poetry", random.Random(0)))


def test_copy_drills_repeat_their_list():
    import random

    from swiftlab.models.train import _documents

    drills = _documents("copy", random.Random(5))
    for _ in range(50):
        first, second = next(drills).split("\n")
        assert first.startswith("List: ") and second == "Again: " + first.removeprefix("List: ")
        assert 4 <= len(first.split(", ")) <= 12


def test_model_card_says_when_a_stage_stopped_before_its_schedule_ended(tmp_path):
    from swiftlab.models.modelcard import write_model_card

    train(tmp_path / "a", replace(TINY, steps=2, eval_every=2), progress=False)
    config = json.loads((tmp_path / "a" / "train_config.json").read_text())
    config["steps"] = 10  # as if it had been planned longer and interrupted after step 2
    (tmp_path / "a" / "train_config.json").write_text(json.dumps(config))
    import torch as t

    state = t.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    state["config"]["steps"] = 10
    t.save(state, tmp_path / "a" / "checkpoint.pt")
    train(tmp_path / "b", replace(TINY, steps=2, eval_every=2, init_from=str(tmp_path / "a")), progress=False)
    target = export(tmp_path / "b", tmp_path / "lab")
    card = write_model_card(target, tmp_path / "b", "| table |", [], {}).read_text()
    assert "2 steps (stopped there; its schedule was for 10)" in card
    assert "# interrupt it once step 2 is checkpointed" in card
