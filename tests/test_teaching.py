"""The token stepper and the six teaching widgets: each shows what the engine itself did."""

import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SkipSet, decode, load_model
from swiftlab.models.adapters import ADAPTERS
from swiftlab.engine.decoding import DecodeSession, Pace, SwiftParams
from swiftlab.analysis.inside import (RaceRecord, StepTrace, expected_speedup, expected_tokens_per_pass,
                             logit_lens, pass_costs, trace_steps)
from swiftlab.engine.records import DecodeResult
from swiftlab.engine.sampling import SamplingParams, probabilities
from swiftlab.engine.skipping import skipping
from swiftlab.engine.tree import tree_mask
from swiftlab.widgets import (DraftTreeView, KVCacheView, LogitLens, Race, RejectionSampling, SpeedupCalculator,
                              TokenStepper)
from swiftlab.widgets.drafttree import shown_mask
from swiftlab.widgets.stepper import pass_cells

PROMPT = "Story: Once upon a time there was a girl."
SKIP = SkipSet.uniform(6, 0.5)


@pytest.fixture(scope="module")
def lab(local_long_llama_dir):
    """The tiny Llama without an end-of-text token: its random weights would end most texts at once."""
    model, tokenizer = load_model(local_long_llama_dir)
    model.generation_config.eos_token_id = model.config.eos_token_id = None
    return model, tokenizer


def test_a_pass_that_ends_at_end_of_text_emits_nothing_after_it(local_long_llama_dir):
    model, tokenizer = load_model(local_long_llama_dir)
    ids = tokenizer(PROMPT)["input_ids"]
    session = DecodeSession(model, ids, skip_set=SKIP, max_new_tokens=24, swift=SwiftParams(fallback=False))
    while not session.done:
        session.step()
    last = session.events[-1]
    assert session.stop_reason == "eos" and last.new_tokens[-1] == 2  # this prompt meets end-of-text
    assert [t for e in session.events for t in e.new_tokens] == session.result().token_ids
    statuses = [status for status, _, _ in pass_cells(last)]
    assert statuses.count("bonus") == (len(last.new_tokens) > last.accepted)


def test_every_pass_names_its_kind_and_why(lab):
    model, tokenizer = lab
    ids = tokenizer(PROMPT)["input_ids"]
    session = DecodeSession(model, ids, skip_set=SKIP, max_new_tokens=24, swift=SwiftParams(fallback=False))
    while not session.done:
        session.step()
    events = session.events
    assert events[0].kind == "prefill" and "prompt pass" in events[0].reason
    assert {e.kind for e in events[1:]} == {"skip"}  # no plain steps with the fallback off
    assert all(e.reason and e.seconds > 0 for e in events)
    for e in events[1:]:
        assert "fallback is off" in e.reason
        assert e.drafted or "one token is left" in e.reason  # an empty draft says why
        assert len(e.path) == e.accepted and e.new_tokens[:-1] == [(e.drafted + sum(e.siblings, []))[i] for i in e.path]
    assert session.result().token_ids == decode(model, ids, method="ar", max_new_tokens=24).token_ids


def test_a_plain_step_says_drafting_was_measured_slower(lab):
    model, tokenizer = lab
    pace = Pace()
    pace.sums = {"skip": (1.0, 1.0), "ar": (0.01, 1.0)}  # drafting measured 100x the time per token
    pace.measured_at = {"skip": 0, "ar": 0}
    pace.next_probe = 10 ** 6
    session = DecodeSession(model, tokenizer(PROMPT)["input_ids"], skip_set=SKIP, max_new_tokens=4, pace=pace)
    session.step()
    plain = session.step()
    assert plain.kind == "ar" and plain.drafted == [] and "100.00x the time per token" in plain.reason


def test_observer_sees_every_stage_and_changes_nothing(lab):
    model, tokenizer = lab
    ids = tokenizer(PROMPT)["input_ids"]
    seen = []
    session = DecodeSession(model, ids, skip_set=SKIP, max_new_tokens=20, observer=lambda stage, **_: seen.append(stage))
    while not session.done:
        session.step()
    passes = len(session.events) - 1  # every pass after the prompt pass, plain steps included
    assert seen == ["start", "drafted", "verified", "kept"] * passes
    assert session.result().token_ids == decode(model, ids, skip_set=SKIP, max_new_tokens=20).token_ids


def test_stepper_rows_add_up_to_the_decoded_output(lab):
    model, tokenizer = lab
    stepper = TokenStepper(model, tokenizer, prompt=PROMPT, skip_set=SKIP, max_new_tokens=24)
    assert not stepper.fallback.value and not stepper.session.swift.fallback  # off by default
    stepper.step_button.click()
    stepper.run_button.click()
    events = stepper.events
    emitted = [t for e in events for status, t, _ in pass_cells(e) if status in ("accepted", "bonus")]
    ids = tokenizer(PROMPT)["input_ids"]
    assert emitted == decode(model, ids, method="ar", max_new_tokens=24).token_ids
    assert sum(len(e.new_tokens) for e in events) == len(stepper.session.tokens) == 24
    assert stepper.table.value.count("<tr>") == len(events) + 1  # the header and one row per pass
    assert "prompt pass" in stepper.table.value and "skip draft" in stepper.table.value
    assert f"<b>{len(events)}</b> full-model passes" in stepper.counters.value
    stepper.fallback.value = True  # the toggle starts a fresh run that may take plain steps
    assert stepper.session.swift.fallback and stepper.events == []


def test_draft_tree_view_shows_tree_py_mask_and_the_accepted_path(lab):
    model, tokenizer = lab
    view = DraftTreeView(model, tokenizer, prompt=PROMPT, skip_set=SKIP, max_new_tokens=24)
    for index in range(len(view.traces)):
        view.pass_slider.value = index
        trace = view.trace
        full = tree_mask(trace.tree, trace.position)[0, 0]
        assert torch.equal(view.mask[:, 1:], full[:, trace.position:]) and bool(view.mask[:, 0].all())
        assert bool(full[:, :trace.position].all())  # what the folded column stands for
        accepted = next(d for d in view.figure.data if d.name == "accepted")
        assert len(accepted.x) == len(trace.path)
    heat = next(d for d in view.figure.data if d.type == "heatmap")
    assert len(heat.y) == view.mask.shape[0] and len(heat.x) == view.mask.shape[1]
    assert view.figure.layout.xaxis2.title.text and view.figure.layout.yaxis2.title.text


def test_kv_cache_view_counts_entries_per_layer_per_stage(lab):
    model, tokenizer = lab
    view = KVCacheView(model, tokenizer, prompt=PROMPT, skip_set=SKIP, max_new_tokens=24)
    trace = view.trace
    n, k = trace.position, len(trace.chain)
    lengths = trace.cache_lengths
    assert lengths["start"] == [n] * 6
    assert lengths["drafted"] == [n if i in SKIP.attention else n + k for i in range(6)]  # skipped layers: fewer
    assert lengths["verified"] == [n + 1 + trace.tree.size] * 6
    assert lengths["kept"] == [n + 1 + len(trace.path)] * 6
    bars = {d.name: list(d.y) for d in view.figure.data}
    assert bars["after drafting"] == [x - n for x in lengths["drafted"]]
    assert bars["after rollback"] == [len(trace.path) + 1] * 6


def test_rejection_sampling_uses_the_models_real_p_and_q_and_stays_lossless(lab):
    model, tokenizer = lab
    widget = RejectionSampling(model, tokenizer, prompt=PROMPT, skip_set=SKIP, temperature=1.0)
    record = widget.record
    params = SamplingParams(temperature=1.0)
    with torch.inference_mode():
        context = torch.tensor([record.context_ids])
        p = probabilities(model(context).logits[0, -1], params)
        with skipping(model, SKIP):
            q = probabilities(model(context).logits[0, -1], params)
    assert torch.allclose(torch.tensor(record.p), p, atol=1e-4)
    assert torch.allclose(torch.tensor(record.q), q, atol=2e-2)  # the drafter may read float16 weights
    assert record.accept_probability == pytest.approx(float(torch.minimum(p, torch.tensor(record.q)).sum()), abs=1e-4)
    widget.draw_button.click()
    assert sum(widget.emitted.values()) == 2  # one at construction, one click
    for _ in range(4):
        widget.many_button.click()
    draws = sum(widget.emitted.values())
    assert draws == 2002
    assert abs(widget.accepted / draws - record.accept_probability) < 0.05
    for token in widget.tokens:  # the emitted tokens follow p, not q
        assert abs(widget.emitted[token] / draws - record.p[token]) < 0.04
    assert "accept probability" in widget.figure.layout.annotations[0].text


def test_speedup_formula():
    assert expected_tokens_per_pass(0.8, 4) == pytest.approx((1 - 0.8 ** 5) / 0.2)
    assert expected_tokens_per_pass(1.0, 4) == 5.0 and expected_tokens_per_pass(0.0, 4) == 1.0
    assert expected_speedup(0.8, 4, 0.0) == pytest.approx(expected_tokens_per_pass(0.8, 4))
    assert expected_speedup(0.0, 3, 0.5) == pytest.approx(1 / 2.5)
    assert expected_speedup(0.0, 3, 0.5, 2.0) == pytest.approx(1 / 3.5)
    swift = DecodeResult("swift", [1], [5] * 9, drafted_per_step=[0, 4, 0, 3], accepted_per_step=[0, 3, 0, 2],
                         step_kinds=["prefill", "skip", "ar", "skip"],
                         timings_s={"prefill": 0.1, "draft": 0.7, "verify": 0.6, "optimize": 0.0, "other": 0.0})
    ar = DecodeResult("ar", [1], [5] * 9, drafted_per_step=[0] * 9, accepted_per_step=[0] * 9, step_kinds=["ar"] * 9,
                      timings_s={"prefill": 0.1, "draft": 0.0, "verify": 0.8, "optimize": 0.0, "other": 0.0})
    plain = 0.8 / 8
    assert pass_costs(swift, ar) == (pytest.approx((0.7 / 7) / plain), pytest.approx((0.6 / 3) / plain))


def test_speedup_calculator_fills_the_sliders_from_a_measured_run(lab):
    model, tokenizer = lab
    calc = SpeedupCalculator(model, tokenizer, skip_set=SKIP, prompts=2, repeats=1, max_new_tokens=12)
    calc.alpha.value, calc.gamma.value, calc.cost.value = 0.5, 2, 0.25
    assert f"{expected_speedup(0.5, 2, 0.25):.2f}×" in calc.result.value
    calc.measure_button.click()
    m = calc.measured
    assert m.runs == 2 and len(m.speedups) == 2 and all(s > 0 for s in m.speedups)
    assert calc.alpha.value == pytest.approx(min(round(m.alpha, 2), 0.99))
    assert calc.cost.value == pytest.approx(min(round(m.cost, 2), 1.0))
    assert f"speedup <b>{m.median:.2f}×</b>" in calc.result.value
    measured = calc.figure.data[-1]
    assert list(measured.y) == [pytest.approx(m.median)] and measured.error_y.array is not None


def test_race_replays_both_runs_to_their_real_outputs(lab):
    model, tokenizer = lab
    race = Race(model, tokenizer, prompt=PROMPT, skip_set=SKIP, max_new_tokens=16)
    assert "press start" in race.panes["ar"].value
    race.start_button.click()
    record = race.record
    assert RaceRecord.from_json(record.to_json()) == record
    ids = tokenizer(PROMPT)["input_ids"]
    reference = decode(model, ids, method="ar", max_new_tokens=16).token_ids
    assert record.at("ar", 0.0) == ([], 0)
    race.clock.value = race.clock.max
    for method in ("ar", "swift"):
        tokens, passes = record.at(method, race.seconds())
        assert tokens == reference and passes == len(record.ends_s[method])
        assert f"{passes} full-model passes" in race.panes[method].value and "finished" in race.panes[method].value
    assert len(record.ends_s["ar"]) == 16 and len(record.ends_s["swift"]) < 16
    assert record.ends_s["ar"] == sorted(record.ends_s["ar"])


@pytest.mark.parametrize("family", sorted(ADAPTERS))
def test_logit_lens_ends_at_the_models_own_prediction(family):
    model = tiny_model(family)
    ids = [1, 5, 9, 14, 3, 7]
    record = logit_lens(model, ids, SkipSet.uniform(6, 0.5))
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0, -1]
    assert len(record.labels) == 13 and record.top_tokens[-1] == int(logits.argmax()) == record.final_token
    if family == "llama":
        assert record.final_token_probs[-1] == pytest.approx(float(torch.softmax(logits, -1).max()), abs=1e-5)


def test_logit_lens_widget_marks_the_skip_set(lab):
    model, tokenizer = lab
    lens = LogitLens(model, tokenizer, prompt=PROMPT, skip_set=SKIP)
    record = lens.record
    assert record.skipped == [False] + [i in getattr(SKIP, kind) for i in range(6) for kind in ("attention", "mlp")]
    skipped = next(d for d in lens.figure.data if d.name.startswith("sub-layer the drafter skips"))
    assert sorted(skipped.y) == sorted(l for l, s in zip(record.labels, record.skipped) if s)
    lens.position.value = 3
    assert lens.record.position == 3
    assert StepTrace.from_json(trace_steps(model, tokenizer(PROMPT)["input_ids"], SKIP, max_new_tokens=4)[1].to_json())
