"""Widgets without a browser: state changes drive the engine, and records and figures follow."""

import pytest

from swiftlab import SkipSet, SwiftlabError, decode, load_model
from swiftlab.search.skipsearch import SearchConfig
from swiftlab.widgets import ModelPicker, OptimizationMonitor, SkipSetEditor, TokenStepper


@pytest.fixture(scope="module")
def lab(local_long_llama_dir):
    return load_model(local_long_llama_dir)


def test_token_stepper_counts_and_colours(lab):
    model, tokenizer = lab
    stepper = TokenStepper(model, tokenizer, prompt="Story: Once", max_new_tokens=20,
                           skip_set=SkipSet.uniform(6, 0.75))
    assert "0</b> full-model passes" in stepper.counters.value
    first = stepper.step()
    assert first.index == 0 and "1</b> full-model passes" in stepper.counters.value
    stepper.run_to_end()
    assert stepper.session.done and stepper.step_button.disabled and "done" in stepper.counters.value
    result = stepper.session.result()
    assert result.token_ids == decode(model, result.prompt_ids, method="ar", max_new_tokens=20).token_ids
    kinds = {kind for kind, _ in stepper.pieces}
    assert {"prompt", "bonus"} <= kinds and "title='bonus'" in stepper.text.value
    stepper.reset()
    assert stepper.pieces == [("prompt", "Story: Once")] and not stepper.step_button.disabled


def test_skip_set_editor_updates_matchness_and_figure(lab):
    model, tokenizer = lab
    editor = SkipSetEditor(model, tokenizer, task="story", prompts=1, window=8)
    editor.preset.value, editor.ratio.value = "none", 0.0
    editor.apply_preset()
    assert editor.skip_set == SkipSet.none(6) and editor.last_matchness == 1.0  # nothing skipped
    editor.toggles[("attention", 2)].value = True
    editor.toggles[("mlp", 3)].value = True
    assert editor.skip_set == SkipSet((2,), (3,), 6)
    # the heatmap is figures.skip_sets_heatmap's (by kind): attention row above the MLP row
    assert list(editor.figure.data[0].z[0]) == [0, 0, 1, 0, 0, 0] and list(editor.figure.data[0].z[1])[3] == 1
    assert list(editor.figure.data[0].y) == ["attention", "MLP"]
    assert "ratio <b>0.25</b>" in editor.matchness.value
    stats = editor.decode(max_new_tokens=8, repeats=2)
    assert stats["identical"] and "identical output: True" in editor.decode_out.value
    # a median over prompts x repeats with its spread, never one run
    assert stats["runs"] == 2 and stats["speedup_min"] <= stats["speedup"] <= stats["speedup_max"]
    assert "min–max" in editor.decode_out.value and "1 prompts × 2 repeats" in editor.decode_out.value


def test_editor_and_explorer_share_one_early_exit(lab):
    # issue 14: the explorer's early exit skipped the last layer, which the editor refused
    from swiftlab.analysis.probes import skip_set_for

    model, tokenizer = lab
    editor = SkipSetEditor(model, tokenizer, task="story", prompts=1, window=8)
    editor.preset.value, editor.ratio.value = "early exit", 0.5
    editor.apply_preset()
    assert editor.skip_set == skip_set_for("early_exit", model, 0.5, []) == SkipSet.early_exit(6, 4)
    assert editor.toggles[("mlp", 5)].value and "SWIFT never does" in editor.matchness.value


def test_editor_says_when_nothing_is_cached(lab, tmp_path):
    from swiftlab.search.store import SkipSetStore

    model, tokenizer = lab
    store = SkipSetStore(tmp_path / "skip_layers.json")
    editor = SkipSetEditor(model, tokenizer, task="story", prompts=1, window=8, store=store, model_name="m")
    before = editor.skip_set
    assert ("cached (none stored)", "cached") in editor.preset.options
    editor.preset.value = "cached"
    editor.apply_preset()
    assert editor.skip_set == before and "Nothing cached" in editor.notice.value  # not silently "no skipping"
    store.put("m", "story", SkipSet((2,), (3,), 6))
    editor.apply_preset()
    assert editor.skip_set == SkipSet((2,), (3,), 6) and editor.notice.value == ""


def test_optimization_monitor_steps_and_runs_in_the_background(lab):
    model, tokenizer = lab
    monitor = OptimizationMonitor(model, tokenizer, task="story", prompts=3, max_new_tokens=16,
                                  config=SearchConfig(window=4, bayes_interval=3, max_steps=1000, tolerance=1000,
                                                      max_score=1.0))
    assert monitor.step()
    random, bayes, best, start = monitor.figure.data  # figures.trajectory_figure's traces, updated in place
    points = len(random.x) + len(bayes.x)
    assert points > 0 and len(start.x) == 1 and len(best.x) == points + 1  # + the start set
    assert monitor.figure.layout.yaxis.title.text == "matchness"
    assert sum(map(sum, monitor.best_figure.data[0].z)) == monitor.stream.search.best.num_skipped
    assert list(monitor.speed_figure.data[0].x) == [0]  # tokens/s of the first prompt, optimize phase
    monitor.start()
    assert monitor.start_button.disabled or not monitor.busy
    monitor.wait(120)
    assert not monitor.busy and not monitor.start_button.disabled and monitor.next_prompt == 3
    assert not monitor.step()  # out of prompts
    assert "prompt 3/3" in monitor.status.value
    assert len(monitor.figure.data[1].x) >= 1  # Bayesian proposals are plotted apart


def test_optimization_monitor_shows_an_error_that_stops_its_background_run(lab, monkeypatch):
    # a background thread's exception reaches no cell: the status line must say what stopped the run
    model, tokenizer = lab
    monitor = OptimizationMonitor(model, tokenizer, task="story", prompts=2, max_new_tokens=8,
                                  config=SearchConfig(window=4, max_steps=3))

    def broken(*args, **kwargs):
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(monitor.stream, "decode", broken)
    monitor.start()
    monitor.wait(60)
    assert not monitor.busy and not monitor.start_button.disabled and monitor.pause_button.disabled
    assert isinstance(monitor.error, RuntimeError)
    assert 'class="swiftlab-error"' in monitor.status.value and "RuntimeError: the model fell over" in monitor.status.value


def test_model_picker_reports_errors_and_loads(local_long_llama_dir):
    loaded = []
    picker = ModelPicker("/no/such/model", on_load=lambda m, t: loaded.append(m))
    assert picker.load() is None and "cannot load model" in picker.status.value and not loaded
    picker.name.value = str(local_long_llama_dir)
    assert picker.load() is not None and len(loaded) == 1 and "6 layers" in picker.status.value


def test_skip_ratio_explorer(lab):
    from swiftlab.widgets import SkipRatioExplorer

    model, tokenizer = lab
    explorer = SkipRatioExplorer(model, tokenizer, task="story", prompts=1, window=8)
    assert explorer.curves["uniform"][0] == 1.0  # r = 0 skips nothing
    explorer.ratio.value = 0.5
    explorer.strategy.value = "early_exit"
    marker = explorer.figure.data[-1]
    assert list(marker.x) == [0.5] and list(marker.y) == [explorer.curves["early_exit"][5]]
    assert "early_exit at r = 0.5" in explorer.info.value
    record = explorer.measure(max_new_tokens=8, repeats=2)
    assert {r.strategy for r in record.rows} == {"uniform", "random", "early_exit"} and all(
        r.identical for r in record.rows)
    assert record.repeats == 2 and all(r.speedup_min <= r.speedup <= r.speedup_max for r in record.rows)
    assert explorer.sweep_area.children and explorer.measure_button.layout.width == "auto"


def test_explorer_scores_with_the_engines_matchness(lab, monkeypatch):
    # issue 14: the explorer re-implemented matchness (no device argument); it must call the engine's
    import swiftlab.widgets.explorer as explorer_module
    from swiftlab.widgets import SkipRatioExplorer

    model, tokenizer = lab
    calls = []
    real = explorer_module.matchness_scores
    monkeypatch.setattr(explorer_module, "matchness_scores", lambda *a, **k: calls.append(1) or real(*a, **k))
    SkipRatioExplorer(model, tokenizer, task="story", prompts=1, window=8)
    assert calls


def test_task_sparsity_comparison_filters_tasks():
    from swiftlab.analysis.probes import TaskSparsityRecord
    from swiftlab.widgets import TaskSparsityComparison

    sets = {t: SkipSet((i + 1,), (), 6).to_dict() for i, t in enumerate(("story", "reasoning", "code"))}
    record = TaskSparsityRecord(6, ["story", "reasoning", "code"], sets, {}, [[1.4, 1.0, 1.1], [1.2, 1.3, 1.0],
                                                                            [1.0, 1.0, 1.2]], True)
    view = TaskSparsityComparison(record)
    assert list(view.transfer_figure.data[0].y) == ["story", "reasoning", "code"]
    view.tasks.value = ("story", "code")
    assert list(view.transfer_figure.data[0].x) == ["story", "code"]
    assert [list(r) for r in view.transfer_figure.data[0].customdata] == [[1.4, 1.1], [1.0, 1.2]]
    assert view.transfer_figure.data[0].z[1][0] == 0.0  # log2(1.0): white, the middle of the scale
    assert list(view.sets_figure.data[0].y) == ["story", "code"]


def test_with_model_picker_rebuilds_on_load(local_long_llama_dir):
    from swiftlab.widgets import with_model_picker

    box = with_model_picker(TokenStepper, name=str(local_long_llama_dir), prompt="Story: A", max_new_tokens=4)
    assert isinstance(box.area.children[0], TokenStepper)
    first = box.area.children[0]
    box.picker.load()
    assert box.area.children[0] is not first


WIDGETS_WITH_A_SKIP_SET = ["TokenStepper", "Race", "LogitLens", "DraftTreeView", "KVCacheView", "RejectionSampling",
                           "SpeedupCalculator"]


@pytest.mark.parametrize("name", WIDGETS_WITH_A_SKIP_SET)
def test_every_widget_checks_its_skip_set_when_it_is_built(lab, name):
    """A skip set for another layer count fails in the constructor with the one-line reason, not at the
    first click (where Race, clicked through its button, showed nothing)."""
    import swiftlab.widgets as widgets

    model, tokenizer = lab
    with pytest.raises(SwiftlabError, match="skip set is for a 30-layer model, this model has 6 layers"):
        getattr(widgets, name)(model, tokenizer, skip_set=SkipSet.uniform(30, 0.45))
    with pytest.raises(SwiftlabError, match="skip_set must be a SkipSet, got dict"):
        getattr(widgets, name)(model, tokenizer, skip_set={"attention": [1], "mlp": []})


def test_an_error_inside_a_button_callback_shows_in_the_widget(lab, monkeypatch):
    import swiftlab.widgets.race as race_module
    from swiftlab.widgets import Race

    model, tokenizer = lab
    view = Race(model, tokenizer, max_new_tokens=8)
    assert view.errors in view.children and view.errors.value == ""

    def broken(*args, **kwargs):
        raise SwiftlabError("prompt too long: 9000 prompt tokens")

    monkeypatch.setattr(race_module, "race", broken)
    view.start_button.click()  # as the browser's click arrives: through the button's handlers
    assert "error: prompt too long: 9000 prompt tokens" in view.errors.value
    assert not view.start_button.disabled  # usable again
    monkeypatch.undo()
    view.start_button.click()
    assert view.errors.value == "" and view.record is not None  # the next success clears it


def test_an_unexpected_error_in_a_slider_callback_shows_its_type(lab, monkeypatch):
    model, tokenizer = lab
    stepper = TokenStepper(model, tokenizer, max_new_tokens=8)
    monkeypatch.setattr(stepper, "reset", lambda: (_ for _ in ()).throw(RuntimeError("cache gone\nmore")))
    stepper.fallback.value = not stepper.fallback.value
    assert stepper.errors.value.endswith("error: RuntimeError: cache gone</span>")
