"""Models larger than one device: loaded with accelerate's device_map, some modules offloaded to disk.

accelerate then hooks every module (`_hf_hook`, an instance `forward`) to move activations and fetch an
offloaded module's weights, which wait on the meta device between calls. These tests dispatch the lab model
and SmolLM2-135M on the CPU with some layers (and, for the lab model, the tied embedding and output head)
on disk, and check that SWIFT stays the model's own decoding there and leaves accelerate's hooks as found.
Several GPUs are not tested here (this machine has none); the code paths are the same hooks.
"""

import warnings

import pytest
import torch

import swiftlab.engine.leandraft as leandraft
from swiftlab import SkipSet, SwiftlabError, decode, load_model
from swiftlab.models.adapters import dispatched, input_device
from swiftlab.api import encode_prompt
from swiftlab.search.budget import pass_cost_rounds
from swiftlab.engine.cache import SkipAwareCache
from swiftlab.engine.decoding import SwiftParams, reference_continuation
from swiftlab.engine.matchness import matchness_scores
from swiftlab.engine.sampling import SamplingParams
from swiftlab.engine.skipping import is_pristine, skipping, skipping_rows
from swiftlab.engine.smallbatch import linear_layers, small_batch_products

LAB_DISK_LAYERS = (1, 8)
# layer 1 (on disk) has both sub-layers off: the whole hooked layer is replaced by the identity; layer 8 (on
# disk) is never skipped, so its weights are fetched from disk at every pass, drafts included
LAB_SKIPS = SkipSet((1, 4, 7, 10, 13), (1, 5, 9, 12), 16)
LAB_PROMPT = "Once upon a time, there was a little cat. The little cat liked to play. The little cat"
SMOL_PROMPT = ("Repeat exactly: the red fox jumps over the lazy dog, the red fox jumps over the lazy dog, "
               "the red fox jumps over the lazy dog.")
SWIFT_RUNS = [SwiftParams(verify=verify, lean_draft=lean, lookup=8, fallback=False)
              for verify in ("chain", "tree") for lean in (True, False)]


def disk_map(layers: int, on_disk, embedding_on_disk: bool) -> dict:
    where = "disk" if embedding_on_disk else "cpu"
    device_map = {"model.embed_tokens": where, "lm_head": where, "model.rotary_emb": "cpu", "model.norm": "cpu"}
    device_map.update({f"model.layers.{i}": "disk" if i in on_disk else "cpu" for i in range(layers)})
    return device_map


def greedy_generate(model, prompt: list[int], new_tokens: int) -> list[int]:
    out = model.generate(torch.tensor([prompt]), max_new_tokens=new_tokens, do_sample=False)
    return out[0, len(prompt):].tolist()


def snapshot(model) -> dict:
    """What SWIFT must leave as it found: each module's attributes and instance forward (accelerate's
    hook, by identity), its hook, and where every parameter is."""
    return {"modules": {name: (sorted(m.__dict__), m.__dict__.get("forward"), getattr(m, "_hf_hook", None))
                        for name, m in model.named_modules()},
            "parameters": {name: p.device for name, p in model.named_parameters()}}


class Dispatched:
    def __init__(self, name: str, folder, on_disk, embedding_on_disk: bool, prompt: str, new_tokens: int):
        self.plain, self.tokenizer = load_model(name)
        layers = self.plain.config.num_hidden_layers
        self.model, _ = load_model(name, device_map=disk_map(layers, on_disk, embedding_on_disk),
                                   offload_folder=folder)
        self.prompt = encode_prompt(self.tokenizer, prompt)
        self.new_tokens = new_tokens
        self.reference = greedy_generate(self.plain, self.prompt, new_tokens)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return Dispatched("lab", tmp_path_factory.mktemp("offload-lab"), LAB_DISK_LAYERS, True, LAB_PROMPT, 32)


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    return Dispatched("smollm2-135m", tmp_path_factory.mktemp("offload-smol"), (2, 15), False, SMOL_PROMPT, 16)


def test_accelerate_really_hooked_and_offloaded_the_models(lab, smol):
    for run in (lab, smol):
        model = run.model
        assert dispatched(model) and not dispatched(run.plain)
        assert "disk" in model.hf_device_map.values()
        assert any(p.device.type == "meta" for p in model.parameters())  # offloaded: fetched per call
        layer = model.model.layers[LAB_DISK_LAYERS[0] if run is lab else 2]
        assert hasattr(layer, "_hf_hook") and "forward" in layer.__dict__
    assert lab.model.get_input_embeddings().weight.device.type == "meta"
    assert input_device(lab.model) == torch.device("cpu")  # from the embedding's hook, not its meta weight


def test_the_offloaded_models_generate_as_before(lab, smol):
    for run in (lab, smol):
        assert greedy_generate(run.model, run.prompt, run.new_tokens) == run.reference


@pytest.mark.parametrize("swift", SWIFT_RUNS, ids=lambda s: f"{s.verify}-{'lean' if s.lean_draft else 'hf'}")
def test_swift_greedy_is_the_models_own_on_the_offloaded_lab_model(lab, swift):
    before = snapshot(lab.model)
    result = decode(lab.model, lab.prompt, skip_set=LAB_SKIPS, max_new_tokens=lab.new_tokens, swift=swift)
    assert result.token_ids == lab.reference  # = the offloaded model's own generate() (test above)
    assert "skip" in result.step_kinds  # drafts really ran through the hooked layers
    assert snapshot(lab.model) == before and is_pristine(lab.model)


def test_swift_greedy_on_offloaded_smollm2(smol):
    skip_set = SkipSet.uniform(smol.model.config.num_hidden_layers, 0.45)
    before = snapshot(smol.model)
    kinds = set()
    for swift in (SWIFT_RUNS[0], SWIFT_RUNS[3]):  # chain with the lean drafter asked for, tree without
        result = decode(smol.model, smol.prompt, skip_set=skip_set, max_new_tokens=smol.new_tokens, swift=swift)
        assert result.token_ids == smol.reference
        kinds.update(result.step_kinds)
    assert {"skip", "lookup"} <= kinds  # both drafters verified through accelerate's hooks
    assert snapshot(smol.model) == before
    assert greedy_generate(smol.model, smol.prompt, smol.new_tokens) == smol.reference  # generate() after SWIFT


@pytest.mark.parametrize("which", ["lab", "smol"])
def test_swift_sampling_on_the_offloaded_model_is_the_plain_models(which, request):
    """Sampling stays lossless: with the same seed, SWIFT sampling on the offloaded model draws exactly the
    tokens SWIFT sampling draws on the model loaded whole, whose output distribution tests/test_sampling.py
    checks statistically against the model's own. (Both draft through transformers: the lean drafter steps
    aside on the offloaded model, and another drafter would draw other, equally distributed, tokens.)"""
    run = request.getfixturevalue(which)
    skip_set = LAB_SKIPS if which == "lab" else SkipSet.uniform(run.model.config.num_hidden_layers, 0.45)
    sampling = SamplingParams(temperature=0.9, top_k=0, top_p=0.95)
    swift = SwiftParams(verify="tree", lean_draft=False, lookup=8, fallback=False)
    before = snapshot(run.model)
    tokens = [decode(model, run.prompt, skip_set=skip_set, max_new_tokens=run.new_tokens, sampling=sampling,
                     swift=swift, seed=7).token_ids for model in (run.plain, run.model)]
    assert tokens[0] == tokens[1] and len(tokens[0]) > 1
    assert snapshot(run.model) == before


def test_the_lean_drafter_steps_aside_once_with_a_one_line_notice(lab, monkeypatch):
    monkeypatch.setattr(leandraft, "_STEP_ASIDE_SHOWN", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            decode(lab.model, lab.prompt, skip_set=LAB_SKIPS, max_new_tokens=4, swift=SwiftParams(lean_draft=True))
        decode(lab.plain, lab.prompt, skip_set=LAB_SKIPS, max_new_tokens=4)  # the whole model: lean, no notice
    notices = [str(w.message) for w in caught if "lean drafter" in str(w.message)]
    assert len(notices) == 1 and "\n" not in notices[0]
    assert "accelerate" in notices[0] and "same output" in notices[0]
    assert leandraft.lean_drafter(lab.model, SkipAwareCache(lab.model.config)) is None


def test_small_batch_products_leave_hooked_linears_to_accelerate(lab):
    assert linear_layers(lab.plain)  # the whole model's linears are taken over in verify passes ...
    assert linear_layers(lab.model) == []  # ... a dispatched model's go through their hooks
    before = snapshot(lab.model)
    with small_batch_products(lab.model):
        assert snapshot(lab.model) == before


def test_skipping_sets_hooks_aside_and_puts_the_same_ones_back(lab):
    layer = lab.model.model.layers[LAB_DISK_LAYERS[0]]
    hooked = layer.__dict__["forward"]
    before = snapshot(lab.model)
    with skipping(lab.model, LAB_SKIPS):
        assert layer.__dict__["forward"] is not hooked and not is_pristine(lab.model)
    assert layer.__dict__["forward"] is hooked and snapshot(lab.model) == before
    with pytest.raises(RuntimeError, match="inside"):
        with skipping_rows(lab.model, [LAB_SKIPS, SkipSet.none(16)]):
            raise RuntimeError("inside")
    assert snapshot(lab.model) == before


def test_matchness_through_hooks_equals_the_whole_models(lab):
    """Scoring passes (skipping_rows wraps each hooked forward; some rows skip an offloaded layer) and the
    reference continuation's cache give the numbers the model loaded whole gives."""
    sets = [SkipSet.none(16), LAB_SKIPS, SkipSet((), (8,), 16)]
    scores = []
    for model in (lab.plain, lab.model):
        tokens, cache = reference_continuation(model, lab.prompt, 9)
        scores.append(matchness_scores(model, cache, tokens, 8, sets))
    assert scores[0] == scores[1] and scores[0][0] == 1.0


def test_pass_costs_run_on_an_offloaded_model(lab):
    (costs,) = pass_cost_rounds(lab.model, 16, rounds=1)
    assert set(costs) == {"full", "verify", "draft_none", "draft_no_attention", "draft_no_mlp"}
    assert all(seconds > 0 for seconds in costs.values())


def test_input_device_refuses_an_embedding_with_no_weights():
    from tiny_models import tiny_model

    with torch.device("meta"):
        model = tiny_model("llama")
    with pytest.raises(SwiftlabError, match="meta device"):
        input_device(model)


def lab_map(**changes) -> dict:
    return {**disk_map(16, LAB_DISK_LAYERS, True), **changes}


@pytest.mark.parametrize("kwargs, message", [
    (dict(device_map="gpu"), r"^device_map: unknown device 'gpu': use cpu, disk, cuda"),
    (dict(device_map=lab_map(**{"model.layers.3": "gpu0"})), r"^device_map\['model.layers.3'\]: unknown device 'gpu0'"),
    (dict(device_map={"": "meta"}), r"device 'meta': swiftlab runs on cpu, cuda or mps"),
    (dict(device_map=[0, 1]), r"device_map must be one of auto, balanced"),
    (dict(device_map=lab_map()), r"device_map puts modules on disk: give offload_folder"),
    (dict(device_map="auto", max_memory={"cpu": 1000}), r"max_memory leaves no room on any device for the whole "
                                                          r"model.*give offload_folder"),
    (dict(device_map="auto", max_memory={"cpu": "lots"}), r"max_memory\['cpu'\]: 'lots' is not a size"),
    (dict(device_map="auto", max_memory={"gpu": "1GB"}), r"max_memory\['gpu'\]: unknown device"),
    (dict(max_memory={"cpu": "1GB"}), r"max_memory place a model across devices: give a device_map"),
    (dict(device="cpu", device_map="auto"), r"give device or device_map, not both"),
])
def test_bad_placements_give_one_clear_error(kwargs, message):
    with pytest.raises(SwiftlabError, match=message) as error:
        load_model("lab", **kwargs)
    assert "\n" not in str(error.value)


def test_a_device_map_accelerate_refuses_is_one_short_line(tmp_path):
    with pytest.raises(SwiftlabError, match=r"does not give any device for the following parameters: .* and \d+ more$"):
        load_model("lab", device_map={"model.embed_tokens": "cpu", "model.layers.0": "disk"}, offload_folder=tmp_path)


def test_an_offload_folder_that_cannot_be_written(tmp_path):
    a_file = tmp_path / "weights.bin"
    a_file.write_text("not a folder")
    for folder in (a_file, a_file / "offload"):
        with pytest.raises(SwiftlabError, match=r"offload_folder .* is not a writable folder"):
            load_model("lab", device_map=lab_map(), offload_folder=folder)


def test_all_on_disk_when_the_caller_allows_it(tmp_path, lab):
    model, _ = load_model("lab", device_map="auto", max_memory={"cpu": 1000}, offload_folder=tmp_path / "new")
    assert set(model.hf_device_map.values()) == {"disk"} and (tmp_path / "new").is_dir()
    assert greedy_generate(model, lab.prompt, 8) == lab.reference[:8]


def test_probes_through_hooks_equal_the_whole_models(lab):
    from swiftlab.analysis.probes import redundancy

    records = [redundancy(model, [lab.prompt], window=4) for model in (lab.plain, lab.model)]
    assert records[1].attention_cosine == pytest.approx(records[0].attention_cosine, abs=1e-5)
    assert records[1].mlp_cosine == pytest.approx(records[0].mlp_cosine, abs=1e-5)


def test_per_step_layer_selection_refuses_a_dispatched_model_clearly(lab):
    from swiftlab.search.layerselect import LayerSelector

    before = snapshot(lab.model)
    with pytest.raises(SwiftlabError, match="needs the lean drafter's conditions.*no offloading hooks"):
        decode(lab.model, lab.prompt, max_new_tokens=4, selector=LayerSelector(lab.model))
    assert snapshot(lab.model) == before
