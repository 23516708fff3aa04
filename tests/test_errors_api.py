"""The Python API checks its input at the boundary: one clear SwiftlabError per bad value, never a raw
TypeError / ValueError / RuntimeError from torch, never a silent conversion; numpy integers welcome."""

import math

import numpy as np
import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SamplingParams, SkipSet, SwiftlabError, SwiftParams, decode, generate, load_model, num_layers


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def local(local_llama_dir):
    return load_model(local_llama_dir)


def _skip(model):
    return SkipSet.uniform(num_layers(model), 0.5)


BAD_IDS = {  # input_ids -> the message's telling part
    "ragged batch": ([[1, 2, 3], [4, 5]], "ragged rows of lengths 2, 3"),
    "string ids": (["1", "2"], "must be integer token ids"),
    "a string": ("hello", "encode the prompt with the tokenizer first"),
    "float ids": ([1, 403.7], "must be integer token ids"),
    "whole floats": ([1.0, 2.0], "must be integer token ids"),
    "bool ids": ([True, False], "must be integer token ids"),
    "float tensor": (torch.tensor([1.0, 2.0]), "integer token ids, got a torch.float32 array"),
    "bool tensor": (torch.tensor([True, False]), "integer token ids"),
    "a number": (5, "must be a list of token ids"),
    "nested too deep": ([[[1, 2]]], "must be integer token ids"),
}


@pytest.mark.parametrize("case", sorted(BAD_IDS))
def test_bad_token_ids(model, case):
    ids, message = BAD_IDS[case]
    for method in ("ar", "swift"):
        with pytest.raises(SwiftlabError, match=message):
            decode(model, ids, method=method, skip_set=_skip(model) if method == "swift" else None, max_new_tokens=4)


BAD_DECODE_ARGS = {
    "string max_new_tokens": ({"max_new_tokens": "5"}, "max_new_tokens must be an integer"),
    "float max_new_tokens": ({"max_new_tokens": 2.5}, "max_new_tokens must be an integer"),
    "bool max_new_tokens": ({"max_new_tokens": True}, "max_new_tokens must be an integer"),
    "string seed": ({"seed": "7", "sampling": SamplingParams(1.0)}, "seed must be an integer"),
    "float seed": ({"seed": 1.5, "sampling": SamplingParams(1.0)}, "seed must be an integer"),
    "sampling not SamplingParams": ({"sampling": {"temperature": 1.0}}, "sampling must be a SamplingParams"),
    "swift not SwiftParams": ({"swift": 0.8}, "swift must be a SwiftParams"),
    "skip set not a SkipSet": ({"skip_set": {"attention": [1], "mlp": []}}, "skip_set must be a SkipSet"),
}


@pytest.mark.parametrize("case", sorted(BAD_DECODE_ARGS))
def test_bad_decode_arguments(model, case):
    overrides, message = BAD_DECODE_ARGS[case]
    kwargs = {"method": "swift", "skip_set": _skip(model), "max_new_tokens": 4, **overrides}
    with pytest.raises(SwiftlabError, match=message):
        decode(model, [1, 2, 3], **kwargs)


BAD_GENERATE_ARGS = {
    "temperature hot": ({"temperature": "hot"}, "temperature must be a number"),
    "temperature nan": ({"temperature": float("nan")}, "temperature must be a finite number"),
    "max_new_tokens string": ({"max_new_tokens": "8"}, "max_new_tokens must be an integer"),
    "max_new_tokens float": ({"max_new_tokens": 8.0}, "max_new_tokens must be an integer"),
    "seed string": ({"seed": "x", "temperature": 1.0}, "seed must be an integer"),
    "top_k float": ({"top_k": 2.5, "temperature": 1.0}, "top_k must be an integer"),
    "skip_ratio string": ({"skip_ratio": "half"}, "skip ratio must be a number"),
    "skip_ratio nan": ({"skip_ratio": float("nan")}, "skip ratio must be between 0 and 1"),
    "prompt bytes": ({"prompt": b"hello"}, "prompt must be a string"),
    "prompt with lone surrogate": ({"prompt": "caf\udce9"}, "prompt is not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_GENERATE_ARGS))
def test_bad_generate_arguments(local, case):
    model, tokenizer = local
    overrides, message = BAD_GENERATE_ARGS[case]
    kwargs = {"max_new_tokens": 4, **overrides}
    prompt = kwargs.pop("prompt", "hi")
    with pytest.raises(SwiftlabError, match=message):
        generate(model, tokenizer, prompt, **kwargs)


BAD_PARAMS = {
    "temperature nan": (lambda: SamplingParams(temperature=float("nan")), "temperature must be a finite number"),
    "temperature inf": (lambda: SamplingParams(temperature=math.inf), "temperature must be a finite number"),
    "temperature string": (lambda: SamplingParams(temperature="hot"), "temperature must be a number"),
    "top_k float": (lambda: SamplingParams(1.0, top_k=2.5), "top_k must be an integer"),
    "top_p nan": (lambda: SamplingParams(1.0, top_p=float("nan")), "top_p must be a finite number"),
    "max_draft float": (lambda: SwiftParams(max_draft=2.5), "max_draft must be an integer"),
    "max_tree bool": (lambda: SwiftParams(max_tree=True), "max_tree must be an integer"),
    "epsilon nan": (lambda: SwiftParams(epsilon=float("nan")), "epsilon must be a finite number"),
    "epsilon string": (lambda: SwiftParams(epsilon="0.8"), "epsilon must be a number"),
    "lookup float": (lambda: SwiftParams(lookup=1.5), "lookup must be an integer"),
    "num_layers bool": (lambda: SkipSet((), (), True), "num_layers must be a positive integer"),
    "num_layers float": (lambda: SkipSet((), (), 6.0), "num_layers must be a positive integer"),
    "index float": (lambda: SkipSet((1.0,), (), 6), "layer indices must be integers"),
    "indices a string": (lambda: SkipSet("12", (), 6), "attention must be a list of layer indices"),
    "string num_layers in a file's dict": (lambda: SkipSet.from_dict({"attention": [1], "mlp": [], "num_layers": "5"}, 5),
                                           "'num_layers' must be a positive integer, got '5'"),
    "uniform with float layers": (lambda: SkipSet.uniform(6.5, 0.5), "num_layers must be an integer"),
    "early exit float": (lambda: SkipSet.early_exit(6, 2.5), "exit layer 2.5 out of range"),
}


@pytest.mark.parametrize("case", sorted(BAD_PARAMS))
def test_bad_parameter_objects(case):
    make, message = BAD_PARAMS[case]
    with pytest.raises(SwiftlabError, match=message):
        make()


def test_numpy_integers_are_accepted_and_become_ints(model):
    s = SkipSet(tuple(np.array([1, 3])), (np.int64(2),), np.int32(6))
    assert s == SkipSet((1, 3), (2,), 6) and all(type(i) is int for i in s.attention + s.mlp + (s.num_layers,))
    assert SkipSet.from_dict({"attention": [np.int64(1)], "mlp": [], "num_layers": np.int64(6)}, 6).attention == (1,)
    params = SwiftParams(max_draft=np.int64(4), lookup=np.int16(2))
    assert type(params.max_draft) is int and params.max_draft == 4
    sampling = SamplingParams(np.float32(0.5), top_k=np.int64(3))
    assert type(sampling.top_k) is int and sampling.temperature == 0.5
    ids = np.array([1, 5, 7], dtype=np.int64)
    by_numpy = decode(model, ids, method="swift", skip_set=s, max_new_tokens=np.int64(6), seed=np.int64(1))
    by_list = decode(model, [1, 5, 7], method="ar", max_new_tokens=6)
    assert by_numpy.token_ids == by_list.token_ids and by_numpy.prompt_ids == [1, 5, 7]
    assert decode(model, torch.tensor([[1, 5, 7]]), method="ar", max_new_tokens=6).token_ids == by_list.token_ids


def test_skip_set_file_with_key_in_swiftlab_format(tmp_path):
    path = tmp_path / "set.json"
    SkipSet((1,), (2,), 6).save(path)
    with pytest.raises(SwiftlabError, match="holds a single skip set .swiftlab's format.*drop #tiny"):
        SkipSet.load(path, 6, "tiny")


def test_skip_set_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "set.json"
    path.write_bytes(b'{"attention": [1], "mlp": [], "num_layers": 6, "note": "\xff\xfe"}')
    with pytest.raises(SwiftlabError, match="is not UTF-8 text"):
        SkipSet.load(path, 6)


def test_harness_and_probes_refuse_empty_or_out_of_range_runs(model):
    from swiftlab.analysis.experiments import run_probe
    from swiftlab.analysis.harness import make_runners, run_bench

    with pytest.raises(SwiftlabError, match="exit layer 0 out of range"):  # not silently L/2
        make_runners(model, ["early-exit"], task="story", model_name="tiny", exit_layer=0)
    for prompts, repeats in ((0, 1), (1, 0)):
        with pytest.raises(SwiftlabError, match="at least one prompt and one repeat"):
            run_bench(model, None, task="story", prompts=prompts, repeats=repeats, methods=["ar"], model_name="tiny")
    with pytest.raises(SwiftlabError, match="no methods"):
        run_bench(model, None, task="story", prompts=1, methods=[], model_name="tiny")
    with pytest.raises(SwiftlabError, match="prompts must be >= 1"):
        run_probe("importance", model, None, prompts=0)


def test_training_log_with_a_line_cut_short_still_reads(tmp_path):
    from swiftlab.support.storage import append_line
    from swiftlab.models.train import read_log

    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "lo')  # killed mid-write
    append_line(log, '{"step": 2, "loss": 2.4}')  # the resumed run redoes step 2 on a line of its own
    assert read_log(tmp_path) == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.4}]


@pytest.mark.parametrize("method", ["ar", "swift"])
def test_a_model_on_the_meta_device_is_a_clear_error(method):
    """A model built under `torch.device("meta")` (or loaded with its weights left out) has no weights to
    compute with: decode says so instead of torch's raw NotImplementedError from deep inside a layer."""
    with torch.device("meta"):
        model = tiny_model("llama")
    with pytest.raises(SwiftlabError, match="meta"):
        decode(model, [1, 2, 3], method=method, skip_set=_skip(model) if method == "swift" else None,
               max_new_tokens=4)
