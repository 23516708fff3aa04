"""Quality metrics: pure functions on hand-made strings, and one small end-to-end evaluation."""

import pytest

from swiftlab.analysis.quality import (evaluate_task, fact_recall, final_answer, function_body, parses,
                                    reference_perplexity, repetition_rate)


def test_final_answer():
    assert final_answer(" 3 + 4 = 7. The answer is 7.\n\nQuestion: ... The answer is 9.") == "7"
    assert final_answer("no answer here") is None
    assert final_answer("The answer is -3.") == "-3"


def test_fact_recall_uses_the_first_paragraph():
    facts = ("Anna Berg", "Lakeside", "May 3", "2021", "45")
    assert fact_recall(" Anna Berg, from Lakeside, on May 3, 2021. There are 45.", facts) == 1.0
    assert fact_recall(" Anna Berg from Oakridge.\n\nLakeside May 3 2021 45", facts) == 0.2
    assert fact_recall("", facts) == 0.0


def test_repetition_rate():
    assert repetition_rate("a b c d e f g") == 0.0
    assert repetition_rate("a b c d a b c d a b c d") == pytest.approx(1 - 4 / 9)
    assert repetition_rate("short") == 0.0


def test_function_body_and_parses():
    prompt = 'def f(x):\n    """Double x."""\n'
    gen = "    y = x * 2\n    return y\n\ndef g():\n    pass"
    assert function_body(gen) == "    y = x * 2\n    return y\n"
    assert parses(prompt, gen)
    assert not parses(prompt, "    return (x *\n")
    assert not parses(prompt, "") and not parses(prompt, "\n\ndef g():\n    pass")  # no body: no credit


def test_perplexity_prefers_the_model_that_predicts_the_reference(local_llama_dir):
    """A model whose weights were trained to say the reference gets lower perplexity than a random one."""
    import torch

    from swiftlab import load_model
    from swiftlab.tasks import get_examples

    model, tokenizer = load_model(local_llama_dir)
    examples = get_examples("story", 2)
    random_ppl = reference_perplexity(model, tokenizer, examples)
    ids = torch.tensor([tokenizer(examples[0].prompt + examples[0].reference)["input_ids"]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(30):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    assert reference_perplexity(model, tokenizer, examples[:1]) < random_ppl / 2


@pytest.mark.parametrize("task, keys", [("reasoning", {"exact_match"}), ("summarization", {"fact_recall"}),
                                        ("code", {"perplexity", "repetition", "parse_rate"})])
def test_evaluate_task_shapes(local_llama_dir, task, keys, monkeypatch):
    from swiftlab import load_model
    from swiftlab.analysis import quality

    monkeypatch.setitem(quality.NEW_TOKENS, task, 4)
    model, tokenizer = load_model(local_llama_dir)
    model.config.max_position_embeddings = 4096  # the byte tokenizer makes long prompts
    row = evaluate_task(model, tokenizer, task, n=2)
    assert row["task"] == task and row["n"] == 2 and keys <= set(row)
    assert all(0.0 <= row[k] <= 1.0 for k in keys if k != "perplexity")
