"""The built-in task generators and the registry."""

import re

import pytest

from swiftlab.support.errors import SwiftlabError
from swiftlab.tasks import Example, get_examples, get_task, split_of, task_names

GENERATED = ["summarization", "reasoning", "story"]


def test_registry_lists_the_four_analysis_tasks():
    assert {"summarization", "reasoning", "story", "code"} <= set(task_names())
    with pytest.raises(SwiftlabError, match="unknown task 'poetry'"):
        get_task("poetry")
    with pytest.raises(SwiftlabError, match="unknown split 'test'"):
        get_examples("story", 3, split="test")


@pytest.mark.parametrize("task", GENERATED)
def test_deterministic_per_seed(task):
    a, b = get_examples(task, 20, seed=1), get_examples(task, 20, seed=1)
    assert a == b
    assert [e.id for e in get_examples(task, 20, seed=2)] != [e.id for e in a]


@pytest.mark.parametrize("task", GENERATED)
def test_splits_never_overlap(task):
    train = get_examples(task, 2000, split="train")
    heldout = get_examples(task, 500, split="heldout")
    assert len({e.id for e in train}) == 2000 and len({e.id for e in heldout}) == 500
    assert not {e.id for e in train} & {e.id for e in heldout}
    # nor across seeds: membership follows content, not the seed
    other_seed = get_examples(task, 500, split="heldout", seed=9)
    assert not {e.id for e in train} & {e.id for e in other_seed}
    # the held-out text itself was never trained on (a story prompt is only its first sentence,
    # which may recur; the story it opens does not)
    assert not {e.prompt + e.reference for e in train} & {e.prompt + e.reference for e in heldout}
    if task != "story":
        assert not {e.prompt for e in train} & {e.prompt for e in heldout}


def test_split_of_is_about_one_in_five():
    share = sum(split_of(str(i)) == "heldout" for i in range(10_000)) / 10_000
    assert 0.17 < share < 0.23


def test_reasoning_answers_are_computed():
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
    for ex in get_examples("reasoning", 300, split="train"):
        steps = re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)", ex.reference)
        assert len(steps) == 2, ex.reference  # multi-step: two operations each
        for a, op, b, result in steps:
            assert ops[op](int(a), int(b)) == int(result), ex.reference
        assert ex.reference.endswith(f"The answer is {ex.answer}.")
        assert int(ex.answer) == int(steps[-1][3]) and int(ex.answer) >= 0
        assert ex.prompt.count("Question:") == 4 and ex.prompt.endswith("Answer:")


def test_summaries_carry_the_article_facts():
    for ex in get_examples("summarization", 200):
        article = ex.prompt.rsplit("Article: ", 1)[1]
        assert len(ex.facts) == 5
        for fact in ex.facts:
            assert fact in article and fact in ex.reference
        assert ex.prompt.startswith("Article: ") and ex.prompt.endswith("\nSummary:")
        assert ex.prompt.count("Summary:") == 2  # 1-shot


def test_stories_are_varied_and_one_shot():
    stories = get_examples("story", 500, split="train")
    assert len({e.reference for e in stories}) == 500
    first_sentences = {e.prompt.rsplit("Story: ", 1)[1] for e in stories}
    assert len(first_sentences) > 100
    assert all(e.prompt.count("Story: ") == 2 for e in stories)


def test_example_round_trip():
    ex = get_examples("summarization", 1)[0]
    assert Example.from_dict(ex.to_dict()) == ex


def test_tasks_cli(capsys):
    import json

    from swiftlab.cli import main

    assert main(["tasks", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("summarization", "reasoning", "story", "code"))
    assert main(["tasks", "show", "reasoning", "-n", "2", "--seed", "4", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [e.id for e in get_examples("reasoning", 2, seed=4)]
    assert main(["tasks", "show", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
