"""Widgets without a browser: state changes drive the engine, and records and figures follow."""

import pytest

from swiftlab import SkipSet, decode, load_model
from swiftlab.search import SearchConfig
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
    assert list(editor.figure.data[0].z[0]) == [0, 0, 1, 0, 0, 0] and list(editor.figure.data[0].z[1])[3] == 1
    assert "ratio <b>0.25</b>" in editor.matchness.value
    assert editor.toggles[("attention", 0)].disabled and editor.toggles[("mlp", 5)].disabled
    stats = editor.decode(max_new_tokens=8)
    assert stats["identical"] and "identical output: True" in editor.decode_out.value


def test_optimization_monitor_steps_and_runs_in_the_background(lab):
    model, tokenizer = lab
    monitor = OptimizationMonitor(model, tokenizer, task="story", prompts=3, max_new_tokens=16,
                                  config=SearchConfig(window=4, bayes_interval=3, max_steps=1000, tolerance=1000,
                                                      max_score=1.0))
    assert monitor.step()
    points = len(monitor.figure.data[0].x) + len(monitor.figure.data[1].x)
    assert points > 0 and len(monitor.figure.data[2].x) == points + 1  # + the start set
    monitor.start()
    assert monitor.start_button.disabled or not monitor.busy
    monitor.wait(120)
    assert not monitor.busy and not monitor.start_button.disabled and monitor.next_prompt == 3
    assert not monitor.step()  # out of prompts
    assert "prompt 3/3" in monitor.status.value
    assert len(monitor.figure.data[1].x) >= 1  # Bayesian proposals are plotted apart


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
    record = explorer.measure(max_new_tokens=8)
    assert {r.strategy for r in record.rows} == {"uniform", "random", "early_exit"} and all(
        r.identical for r in record.rows)


def test_task_sparsity_comparison_filters_tasks():
    from swiftlab.probes import TaskSparsityRecord
    from swiftlab.widgets import TaskSparsityComparison

    sets = {t: SkipSet((i + 1,), (), 6).to_dict() for i, t in enumerate(("story", "reasoning", "code"))}
    record = TaskSparsityRecord(6, ["story", "reasoning", "code"], sets, {}, [[1.4, 1.0, 1.1], [1.2, 1.3, 1.0],
                                                                            [1.0, 1.0, 1.2]], True)
    view = TaskSparsityComparison(record)
    assert list(view.transfer_figure.data[0].y) == ["story", "reasoning", "code"]
    view.tasks.value = ("story", "code")
    assert list(view.transfer_figure.data[0].x) == ["story", "code"]
    assert [list(r) for r in view.transfer_figure.data[0].z] == [[1.4, 1.1], [1.0, 1.2]]
    assert list(view.sets_figure.data[0].y) == ["story", "code"]


def test_with_model_picker_rebuilds_on_load(local_long_llama_dir):
    from swiftlab.widgets import with_model_picker

    box = with_model_picker(TokenStepper, name=str(local_long_llama_dir), prompt="Story: A", max_new_tokens=4)
    assert isinstance(box.area.children[0], TokenStepper)
    first = box.area.children[0]
    box.picker.load()
    assert box.area.children[0] is not first
