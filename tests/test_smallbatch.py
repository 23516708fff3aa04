"""Few-token linear products (smallbatch.py): the same numbers either way, the measured faster way
chosen, the model left as it was found, and greedy output still the model's own."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from swiftlab import SkipSet, SwiftParams, decode
from swiftlab.analysis.bench import hf_generate
from swiftlab.engine import smallbatch
from swiftlab.engine.smallbatch import MAX_ROWS, TRIALS, SmallBatchProducts, linear_layers, small_batch_products
from tiny_models import tiny_model


class FakeClock:
    """Each product of the `slow` way appears to take 10 s, the other 1 s."""

    def __init__(self, products: SmallBatchProducts, slow: str):
        self.now, self.slow, self.products = 0.0, slow, products
        self.ways: list[str] = []
        real = products._product

        def product(way, *args):
            self.ways.append(way)
            self.now += 10.0 if way == self.slow else 1.0
            return real(way, *args)
        products._product = product

    def __call__(self) -> float:
        return self.now


class Always(SmallBatchProducts):
    """Every few-token product taken one fixed way (to test that way end to end)."""

    def __init__(self, way: str):
        super().__init__()
        self.way, self.calls = way, 0

    def __call__(self, x, weight, bias):
        rows = x.numel() // x.shape[-1]
        if not 2 <= rows <= MAX_ROWS:
            return F.linear(x, weight, bias)
        self.calls += 1
        return self._product(self.way, x, weight, bias)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(1, 3, 24), (5, 24), (2, 4, 24)])
def test_both_ways_compute_the_linear_layer(shape, bias):
    torch.manual_seed(0)
    layer = nn.Linear(24, 40, bias=bias)
    x = torch.randn(shape)
    expected = layer(x)
    for way in SmallBatchProducts.WAYS:
        got = SmallBatchProducts._product(way, x, layer.weight, layer.bias)
        assert got.shape == expected.shape and got.is_contiguous()
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        got.view(-1)  # callers reshape with .view()


@pytest.mark.parametrize("slow", SmallBatchProducts.WAYS)
def test_the_faster_way_is_measured_then_kept(slow):
    products = SmallBatchProducts()
    clock = FakeClock(products, slow)
    products.clock = clock
    weight, x = torch.randn(40, 24), torch.randn(1, 4, 24)
    for _ in range(2 * TRIALS + 5):
        torch.testing.assert_close(products(x, weight, None), F.linear(x, weight), rtol=1e-5, atol=1e-5)
    trials, after = clock.ways[:2 * TRIALS], clock.ways[2 * TRIALS:]
    assert sorted(trials) == sorted(SmallBatchProducts.WAYS * TRIALS)  # each way timed TRIALS times
    assert trials[0] != trials[1]  # alternating, so drift hits both alike
    fast = next(w for w in SmallBatchProducts.WAYS if w != slow)
    assert after == [fast] * 5
    assert products.chosen == {((40, 24), torch.float32, 4): fast}


def test_one_row_and_long_passes_keep_f_linear():
    products = SmallBatchProducts()
    clock = FakeClock(products, "linear")
    products.clock = clock
    weight = torch.randn(40, 24)
    for rows in (1, MAX_ROWS + 1, 300):
        x = torch.randn(1, rows, 24)
        assert torch.equal(products(x, weight, None), F.linear(x, weight))
    assert clock.ways == [] and products.chosen == {} and products.samples == {}


def test_each_row_count_is_chosen_apart():
    products = SmallBatchProducts()
    products.clock = FakeClock(products, "transposed")
    weight = torch.randn(40, 24)
    for rows in (2, 3):
        for _ in range(2 * TRIALS):
            products(torch.randn(rows, 24), weight, None)
    assert set(products.chosen) == {((40, 24), torch.float32, 2), ((40, 24), torch.float32, 3)}


def no_overrides(model: nn.Module) -> bool:
    return all("forward" not in m.__dict__ for m in model.modules())


def test_the_model_is_left_as_it_was_found():
    model = tiny_model("llama")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = model(ids).logits
    assert len(linear_layers(model)) == 7 * model.config.num_hidden_layers + 1  # q k v o gate up down, head
    with small_batch_products(model):
        assert all("forward" in m.__dict__ for m in [m for m in model.modules() if type(m) is nn.Linear])
    assert no_overrides(model)
    with pytest.raises(RuntimeError, match="boom"):
        with small_batch_products(model):
            raise RuntimeError("boom")
    assert no_overrides(model)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, before)


def test_nested_and_foreign_overrides_are_left_alone():
    model = tiny_model("llama")
    head = model.get_output_embeddings()
    own = lambda x: F.linear(x, head.weight)  # noqa: E731 - someone else's override (a hook library's, say)
    head.__dict__["forward"] = own
    with small_batch_products(model):
        assert head.__dict__["forward"] is own
        inner = model.model.layers[0].mlp.up_proj.__dict__["forward"]
        with small_batch_products(model):
            assert model.model.layers[0].mlp.up_proj.__dict__["forward"] is inner
        assert model.model.layers[0].mlp.up_proj.__dict__["forward"] is inner  # the inner exit took nothing
    assert head.__dict__["forward"] is own
    del head.__dict__["forward"]
    assert no_overrides(model)


@pytest.mark.parametrize("way", SmallBatchProducts.WAYS)
@pytest.mark.parametrize("verify", ["tree", "chain"])
def test_greedy_output_is_the_models_own_either_way(monkeypatch, stories_path, way, verify):
    """Real weights (stories260K): whichever way the verify passes' products are taken, SWIFT's greedy
    output equals generate()'s, and the verify passes did go through them."""
    from swiftlab import load_model

    model, tokenizer = load_model(str(stories_path))
    products = Always(way)
    monkeypatch.setattr(smallbatch, "PRODUCTS", products)
    skip = SkipSet.uniform(model.config.num_hidden_layers, 0.4)
    for text in ("Once upon a time", "Tom and his dog went to the park. They"):
        ids = tokenizer(text).input_ids
        reference = hf_generate(model, ids, 40).token_ids
        result = decode(model, ids, method="swift", skip_set=skip, max_new_tokens=40,
                        swift=SwiftParams(verify=verify, fallback=False))
        assert result.token_ids == reference
    assert products.calls > 0
    assert no_overrides(model)


def test_plain_decoding_never_takes_linear_layers_over(monkeypatch):
    model = tiny_model("llama")
    products = Always("transposed")
    monkeypatch.setattr(smallbatch, "PRODUCTS", products)
    decode(model, torch.tensor([[5, 6, 7, 8, 9, 10]]), method="ar", max_new_tokens=8)
    assert products.calls == 0
    decode(model, torch.tensor([[5, 6, 7, 8, 9, 10]]), method="swift",
           skip_set=SkipSet.uniform(model.config.num_hidden_layers, 0.5), max_new_tokens=8,
           swift=SwiftParams(fallback=False))
    assert products.calls > 0
