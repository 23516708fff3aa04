"""Compiled full-model passes (SwiftParams(compile=True)): the same tokens as eager decoding, graphs compiled once."""

import gc
import weakref

import pytest
import torch
from tiny_models import tiny_model
from torch._dynamo.utils import counters

from swiftlab import SkipSet, SwiftlabError, decode, num_layers
from swiftlab.cli import _swift_params, build_parser
from swiftlab.engine.cache import SkipAwareCache
from swiftlab.engine.compiled import CAPACITY, GRAPHS, compile_passes, compile_seconds, compiled_forward
from swiftlab.engine.decoding import SwiftParams
from swiftlab.engine.skipping import is_pristine

PROMPTS = [[1, 5, 9, 23, 40], [7, 7, 12, 30, 31, 32, 33, 34, 7, 7, 12], [2, 3]]


def graphs_compiled() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


# the tiny model's sizes, and sizes common in real ones (head size 64, SmolLM2's 3 key/value heads): a traced
# size that equals a model's own can be fixed in the graph, which then compiles again for every other value
@pytest.fixture(scope="module", params=[("llama", {}),
                                        ("llama", {"hidden_size": 192, "num_attention_heads": 3, "num_key_value_heads": 3, "head_dim": 64})],
                ids=["tiny", "head-size-64"])
def model(request):
    family, overrides = request.param
    m = tiny_model(family, seed=3, **overrides)
    m.generation_config.eos_token_id = None
    return m


def test_compiled_decoding_is_eager_decoding_and_compiles_each_graph_once(model):
    before = {kind: counters["inductor"][kind] for kind in ("one_row_product", "few_row_product")}
    seconds = compile_passes(model, progress=False, draft=None)  # the full passes only, first
    assert set(seconds) == set(GRAPHS) - {"draft"} and all(s > 0 for s in seconds.values())
    # the graphs' products, one per weight (7 a layer, the head), made a multiply and a sum (one-token graph)
    # or taken the other way round (verify and tree graphs); AOTAutograd traces a graph more than once
    per_trace = 7 * num_layers(model) + 1
    for kind, count in before.items():
        decomposed = counters["inductor"][kind] - count
        assert decomposed > 0 and decomposed % per_trace == 0, (kind, decomposed, per_trace)
    seconds = compile_passes(model, progress=False)  # and the draft pass (compileddraft.py)
    assert set(seconds) == set(GRAPHS) and all(s > 0 for s in seconds.values())
    before = graphs_compiled()
    skip, accepted = SkipSet.uniform(num_layers(model), 0.5), 0
    for prompt in PROMPTS:  # other lengths, other capacities, runs that outgrow theirs: no new graph
        for n in (9, 40):
            eager = decode(model, prompt, method="ar", max_new_tokens=n).token_ids
            assert decode(model, prompt, method="ar", max_new_tokens=n, swift=SwiftParams(compile=True)).token_ids == eager
            for verify in ("tree", "chain"):
                swift = SwiftParams(verify=verify, fallback=False, compile=True)
                result = decode(model, prompt, method="swift", skip_set=skip, max_new_tokens=n, swift=swift)
                assert result.token_ids == eager and is_pristine(model)
                accepted += sum(result.accepted_per_step)
    assert accepted > 0  # drafts were verified and accepted, by the compiled verify and tree passes
    assert graphs_compiled() == before, "a compiled pass was compiled again"
    assert compile_seconds(model) == seconds  # compiling again is a no-op that reports what was measured
    assert compile_passes(model, progress=False) == seconds
    # a request met before checks the weights alone: no scratch cache, no drafter built (4 ms a run)
    from unittest import mock

    import swiftlab.engine.compiled as compiled_module
    with mock.patch.object(compiled_module, "SkipAwareCache", side_effect=AssertionError("a scratch cache")):
        assert compile_passes(model, progress=False) == seconds


def test_autoregressive_decoding_compiles_its_one_token_graph_alone():
    fresh = tiny_model("llama", seed=5)
    fresh.generation_config.eos_token_id = None
    eager = decode(fresh, PROMPTS[0], method="ar", max_new_tokens=12).token_ids
    assert decode(fresh, PROMPTS[0], method="ar", max_new_tokens=12, swift=SwiftParams(compile=True)).token_ids == eager
    assert set(compile_seconds(fresh)) == {"one-token"}  # no verify or tree graph it would never run


def test_the_cli_flag_asks_for_compiled_passes():
    args = build_parser().parse_args(["generate", "--model", "lab", "--prompt", "hi", "--compile"])
    assert _swift_params(args).compile is True
    assert _swift_params(build_parser().parse_args(["generate", "--model", "lab", "--prompt", "hi"])).compile is False


def test_a_compiled_model_is_freed_when_its_user_lets_go_of_it():
    model = tiny_model("llama", seed=4, num_hidden_layers=2)
    freed = weakref.ref(model)
    cache = SkipAwareCache(model.config, rollback=False, capacity=CAPACITY)
    with torch.inference_mode():
        model(input_ids=torch.tensor([[1, 2, 3]]), cache=cache, use_cache=True)
        compiled_forward(model)(input_ids=torch.tensor([[4]]), position_ids=torch.tensor([[3]]), attention_mask=None,
                                cache=cache, use_cache=True)  # compiled and called: dynamo holds what it traced
    del model, cache
    gc.collect()
    assert freed() is None, "the compiled-model cache keeps a model alive"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_few_row_products_are_the_matrix_product(dtype):
    # what the compiled graphs compute instead of the BLAS's product as called (compiled.py)
    from swiftlab.engine.inductor import _few_row_product
    matrix = torch.randn(96, 40, dtype=dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    for rows in (1, 3, 39):
        x = torch.randn(rows, 96, dtype=dtype)
        product = _few_row_product(x, matrix)
        assert product.dtype == dtype and product.shape == (rows, 40)
        torch.testing.assert_close(product.float(), x.float() @ matrix.float(), rtol=tolerance, atol=tolerance * 10)
    assert _few_row_product(torch.randn(40, 96, dtype=dtype), matrix) is NotImplemented  # as many rows as columns


def test_a_compiled_run_prices_its_full_passes_compiled(model):
    # the search weighs a draft pass against a full one: a compiled run's full passes must be timed compiled
    from swiftlab.search.budget import pass_cost_rounds
    compile_passes(model, progress=False)
    calls = []

    def counted(**inputs):
        calls.append(inputs["input_ids"].shape[1])
        return compiled_forward(model)(**inputs)

    before = graphs_compiled()
    for cache in (None, SkipAwareCache(model.config, capacity=40)):  # a fresh cache, and a run's
        if cache is not None:
            with torch.inference_mode():
                model(input_ids=torch.tensor([PROMPTS[1]]), cache=cache, use_cache=True)
        context = 20 if cache is None else len(PROMPTS[1])
        rounds = pass_cost_rounds(model, context, rounds=2, cache=cache, full_forward=counted)
        assert len(rounds) == 2 and all(r["full"] > 0 and r["verify"] > 0 for r in rounds)
        assert cache is None or cache.get_seq_length() == context  # every timed pass cropped off again
    assert calls == [1, 8] * 4 and graphs_compiled() == before and is_pristine(model)


def test_compiled_passes_from_transformers_generate(model):
    # a transformers user's call: their generate(), swiftlab as its custom_generate, compiled passes asked for
    import swiftlab
    compile_passes(model, progress=False)
    before, prompt = graphs_compiled(), torch.tensor([PROMPTS[1]])
    want = model.generate(input_ids=prompt, do_sample=False, max_new_tokens=30)
    got = model.generate(input_ids=prompt, custom_generate=swiftlab.hf_generate, max_new_tokens=30,
                         skip_set=SkipSet.uniform(num_layers(model), 0.5), swift=SwiftParams(compile=True),
                         return_dict_in_generate=True)
    assert got.sequences.tolist() == want.tolist() and is_pristine(model)
    assert sum(got.swift.accepted_per_step) > 0 and graphs_compiled() == before


def test_sliding_window_models_are_refused_in_one_line():
    # their sliding layers' cache changes shape as the window slides: every pass would compile again (measured)
    model = tiny_model("gemma2", seed=3)
    with pytest.raises(SwiftlabError, match=r"^compile=True: Gemma2ForCausalLM has sliding-window attention layers"):
        decode(model, PROMPTS[0], method="ar", max_new_tokens=4, swift=SwiftParams(compile=True))
    assert compile_seconds(model) == {}


def test_compiled_kinds_are_called_with_the_differentiating_guards_alone_and_others_with_all():
    # light guards (guards.py) only for a kind whose graph is compiled: a tree pass before its graph exists is
    # called under every guard, and compiles
    import swiftlab.engine.guards as guards
    from swiftlab.engine.tree import DraftTree, tree_mask, tree_positions
    model = tiny_model("llama", seed=5, num_hidden_layers=2)
    compile_passes(model, tree=False, progress=False, draft=None)
    stances, real = [], guards._set_stance

    def recorded(stance):
        stances.append(stance.skip_guard_eval_unsafe)
        return real(stance)

    guards._set_stance = recorded
    try:
        cache = SkipAwareCache(model.config, capacity=40)
        tree = DraftTree(chain=[3, 4], siblings=[[9], []])
        with torch.inference_mode():
            model(input_ids=torch.tensor([PROMPTS[0]]), cache=cache, use_cache=True)
            n = cache.get_seq_length()
            inputs = dict(input_ids=torch.tensor([[2] + tree.tokens()]), position_ids=tree_positions(tree, n),
                          attention_mask=tree_mask(tree, n), cache=cache, use_cache=True)
            before = graphs_compiled()
            got = compiled_forward(model)(**inputs).logits
            assert graphs_compiled() == before + 1 and stances == []  # compiled, under every guard
            cache.crop_to(n)
            want = model(**inputs).logits
            cache.crop_to(n)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
            compiled_forward(model)(input_ids=torch.tensor([[4]]), position_ids=torch.tensor([[n]]),
                                    attention_mask=None, cache=cache, use_cache=True)
        assert stances == [True, False]  # the one-token graph: light guards on, and off again after
    finally:
        guards._set_stance = real
    for dtype in (torch.float32, torch.bfloat16):  # a model cast after compiling: every guard again, compiled again
        model.to(dtype)
        eager = decode(model, PROMPTS[1], method="ar", max_new_tokens=20).token_ids
        before = graphs_compiled()
        assert decode(model, PROMPTS[1], method="ar", max_new_tokens=20, swift=SwiftParams(compile=True)).token_ids == eager
        assert graphs_compiled() == before + (dtype == torch.bfloat16)
        assert compiled_forward(model).light is (dtype == torch.float32)


def test_a_call_no_graph_passes_under_light_guards_is_compiled_under_every_guard():
    from swiftlab.engine.guards import lightly_guarded
    twice = torch.compile(lambda x: x * 2, backend="eager")
    assert twice(torch.ones(3)).dtype == torch.float32
    before = graphs_compiled()
    got = lightly_guarded(twice, torch.ones(3, dtype=torch.bfloat16))  # dynamo refuses under the stance: retried
    assert got.dtype == torch.bfloat16 and got.tolist() == [2, 2, 2] and graphs_compiled() == before + 1
    assert lightly_guarded(twice, torch.ones(3)).dtype == torch.float32  # the first graph, its guards passing
