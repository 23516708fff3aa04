"""The real-dataset loaders (swiftlab/tasks/datasets.py), on small fixture files written here.

Nothing is downloaded: local files exercise the prompt formats and errors, and the hub path is
tested against a fake `datasets` module put in sys.modules (or None there, to make the import
fail), which also shows which hub splits are asked for.
"""

import json
import sys
import types

import pytest

from swiftlab import SwiftlabError
from swiftlab.tasks import get_examples, get_task, task_names
from swiftlab.tasks.datasets import Gsm8k, gsm8k_solution, split_story


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def gsm_rows(k=8):
    # The third answer has a thousands separator, to check it is stripped everywhere.
    rows = []
    for i in range(k):
        total = 1000 + i if i == 2 else 70 + i
        shown = f"{total:,}" if i == 2 else str(total)
        rows.append({"question": f"Q{i}: how many clips?",
                     "answer": f"Natalia sold 48/2 = <<48/2=24>>24 clips.\nIn total {total}.\n#### {shown}"})
    return rows


def cnn_rows(k=4):
    return [{"id": f"id{i}", "article": f"Article number {i}. " + "words " * 10,
             "highlights": f"Highlight {i} one .\nHighlight {i} two ."} for i in range(k)]


STORIES = [
    "Once upon a time, there was a cat. The cat liked milk. It was happy.",
    "Tom had a red ball! He played with it every day.",
    "A bird sang.",  # one sentence: nothing to continue, so never a query
    'Lily said, "Hello." Then she smiled.\n\nThe end.',
]

HUMANEVAL = [{"task_id": f"HumanEval/{i}", "prompt": f"def f{i}(x):\n    \"\"\"doc\"\"\"\n",
              "canonical_solution": f"    return x + {i}\n", "test": "def check(c): pass", "entry_point": f"f{i}"}
             for i in range(3)]

SPEC = [
    {"question_id": 81, "category": "writing", "turns": ["Write a blog post.", "Rewrite it."],
     "reference": ["A post."]},
    {"question_id": 161, "category": "translation", "turns": ["Translate: Hallo"]},
    {"question_id": 241, "category": "summarization", "turns": ["Summarize: ..."]},
    {"question_id": 321, "category": "qa", "turns": ["Who wrote Hamlet?"]},
    {"question_id": 401, "category": "math_reasoning", "turns": ["2+2?"]},
    {"question_id": 481, "category": "rag", "turns": ["Context ... question?"]},
    {"question_id": 82, "category": "math", "turns": ["Solve x."]},
]


# ----- registration and the get_examples path --------------------------------------------------
def test_registered_under_their_names():
    assert {"cnndm", "gsm8k", "tinystories", "humaneval", "specbench"} <= set(task_names())
    # constructing without a path must not touch the network (the CLI's `tasks list` does this)
    assert "GSM8K" in get_task("gsm8k").description


# ----- GSM8K --------------------------------------------------------------------------------------
def test_gsm8k_five_shot_format(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", gsm_rows())
    examples = get_examples("gsm8k", 8, path=path)
    assert len(examples) == 8
    for ex in examples:
        assert ex.prompt.count("Question:") == 6 and ex.prompt.count("Answer:") == 6
        assert ex.prompt.endswith("\nAnswer:")
        assert "####" not in ex.prompt and "####" not in ex.reference
        assert ex.reference.startswith(" Natalia sold") and ex.reference.endswith(f"The answer is {ex.answer}.")
        # the query is never one of its own demonstrations
        question = ex.prompt.rsplit("Question: ", 1)[1].split("\n")[0]
        assert ex.prompt.count(question) == 1
    by_answer = {ex.answer: ex for ex in examples}
    assert set(by_answer) == {"70", "71", "1002", "73", "74", "75", "76", "77"}
    assert "The answer is 1002." in by_answer["1002"].reference
    # the shots are the first five records other than the query, with '####' converted
    first = by_answer["70"].prompt
    assert first.startswith("Question: Q1: how many clips?\nAnswer: Natalia sold")
    assert "In total 71.\nThe answer is 71.\n\nQuestion: Q2" in first
    assert "The answer is 1002.\n\n" in first  # commas stripped in the demonstrations too
    assert first.endswith("The answer is 75.\n\nQuestion: Q0: how many clips?\nAnswer:")


def test_gsm8k_solution_conversion(tmp_path):
    solution, number = gsm8k_solution("Half of 144 is 72.\n#### 72", "x")
    assert (solution, number) == ("Half of 144 is 72.\nThe answer is 72.", "72")
    assert gsm8k_solution("So 1,234,567 in all.\n####  1,234,567 ", "x")[1] == "1234567"
    rows = gsm_rows(3)
    rows[2]["answer"] = "no final line"
    path = write_jsonl(tmp_path / "gsm.jsonl", rows)
    with pytest.raises(SwiftlabError, match=r"line 3 of .*gsm\.jsonl: the answer has no final '#### N' line"):
        get_examples("gsm8k", 1, path=path)


def test_gsm8k_shots_option_and_too_few_records(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", gsm_rows(3))
    ex = get_examples("gsm8k", 1, path=path, shots=2)[0]
    assert ex.prompt.count("Question:") == 3
    assert get_examples("gsm8k", 1, path=path, shots=0)[0].prompt.startswith("Question: ")
    with pytest.raises(SwiftlabError, match="needs 5 demonstration.*only 2 other record"):
        get_examples("gsm8k", 1, path=path)


def test_seed_gives_a_deterministic_order_and_n_caps(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", gsm_rows())
    ids = lambda **kw: [e.answer for e in get_examples("gsm8k", path=path, **kw)]  # noqa: E731
    assert ids(n=8, seed=1) == ids(n=8, seed=1)
    assert ids(n=8, seed=1) != ids(n=8, seed=2)
    assert sorted(ids(n=8, seed=1)) == sorted(ids(n=8, seed=2))
    assert ids(n=3, seed=1) == ids(n=8, seed=1)[:3]  # a smaller n is a prefix
    assert len(ids(n=100, seed=0)) == 8  # n caps; it does not invent examples
    assert ids(n=0) == []
    # the seed changes which records are queries, never the demonstrations
    a, b = get_examples("gsm8k", 8, seed=1, path=path), get_examples("gsm8k", 8, seed=2, path=path)
    assert {e.answer: e.prompt for e in a} == {e.answer: e.prompt for e in b}


def test_file_is_the_split_asked_for(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", gsm_rows())
    train = get_examples("gsm8k", 8, split="train", path=path)
    heldout = get_examples("gsm8k", 8, split="heldout", path=path)
    assert train == heldout
    with pytest.raises(SwiftlabError, match="unknown split 'test'"):
        get_examples("gsm8k", 1, split="test", path=path)
    with pytest.raises(SwiftlabError, match="integer >= 0"):
        get_examples("gsm8k", -1, path=path)


# ----- CNN/DailyMail -------------------------------------------------------------------------------
def test_cnndm_one_shot_format_from_json(tmp_path):
    path = tmp_path / "cnn.json"
    path.write_text(json.dumps(cnn_rows()))
    examples = get_examples("cnndm", 4, seed=3, path=path)
    assert sorted(e.id for e in examples) == ["id0", "id1", "id2", "id3"]
    ex = next(e for e in examples if e.id == "id2")
    shot, query = cnn_rows()[0], cnn_rows()[2]
    assert ex.prompt == (f"Article: {shot['article'].strip()}\nSummary: {shot['highlights']}\n\n"
                         f"Article: {query['article'].strip()}\nSummary:")
    assert ex.reference == " " + query["highlights"]
    assert ex.facts == ("Highlight 2 one .", "Highlight 2 two .")
    # record 0's demonstration is the first record that is not itself
    assert next(e for e in examples if e.id == "id0").prompt.startswith("Article: Article number 1.")


def test_cnndm_json_object_with_data_list_and_truncation(tmp_path):
    rows = cnn_rows(2)
    rows[1]["article"] = "word " * 1000  # 5000 characters
    del rows[1]["id"]  # falls back to a content hash
    path = tmp_path / "cnn.json"
    path.write_text(json.dumps({"data": rows}))
    ex = next(e for e in get_examples("cnndm", 2, path=path) if e.id != "id0")
    article = ex.prompt.rsplit("Article: ", 1)[1].split("\nSummary:")[0]
    assert 1900 <= len(article) <= 2000 and not article.endswith(" ") and ex.meta["truncated"]
    assert len(ex.id) == 16
    longer = next(e for e in get_examples("cnndm", 2, path=path, max_article_chars=None) if e.id == ex.id)
    assert longer.prompt.rsplit("Article: ", 1)[1].split().count("word") == 1000  # whole again
    with pytest.raises(SwiftlabError, match="max_article_chars must be a positive integer"):
        get_task("cnndm", path=path, max_article_chars=0)


# ----- TinyStories ---------------------------------------------------------------------------------
def test_tinystories_prompt_and_reference(tmp_path):
    path = write_jsonl(tmp_path / "stories.jsonl", [{"text": t} for t in STORIES])
    examples = get_examples("tinystories", 10, path=path)
    assert len(examples) == 3  # the one-sentence story is skipped as a query
    by_first = {e.prompt.rsplit("Story: ", 1)[1]: e for e in examples}
    assert set(by_first) == {"Once upon a time, there was a cat.", "Tom had a red ball!", 'Lily said, "Hello."'}
    cat = by_first["Once upon a time, there was a cat."]
    assert cat.prompt == f"Story: {STORIES[1]}\n\nStory: Once upon a time, there was a cat."
    assert cat.reference == " The cat liked milk. It was happy."
    lily = by_first['Lily said, "Hello."']
    assert lily.prompt + lily.reference == f"Story: {STORIES[0]}\n\nStory: {STORIES[3]}"


def test_split_story():
    assert split_story("One line only.") is None
    assert split_story("First line\nsecond line.") == ("First line", "\nsecond line.")
    assert split_story("  Hi! Bye.  ") == ("Hi!", " Bye.")


# ----- HumanEval -----------------------------------------------------------------------------------
def test_humaneval(tmp_path):
    path = write_jsonl(tmp_path / "he.jsonl", HUMANEVAL)
    examples = get_examples("humaneval", 3, path=path)
    ex = next(e for e in examples if e.id == "HumanEval/1")
    assert ex.prompt == HUMANEVAL[1]["prompt"] and ex.reference == HUMANEVAL[1]["canonical_solution"]
    assert ex.meta["entry_point"] == "f1" and ex.meta["test"] == "def check(c): pass"
    with pytest.raises(SwiftlabError, match="no option.*shots"):
        get_task("humaneval", path=path, shots=1)


# ----- Spec-Bench ----------------------------------------------------------------------------------
def test_specbench_and_categories(tmp_path):
    path = write_jsonl(tmp_path / "question.jsonl", SPEC)
    examples = get_examples("specbench", 10, path=path)
    assert len(examples) == 7
    writing = next(e for e in examples if e.id == "81")
    assert writing.prompt == "Write a blog post." and writing.reference == "A post."
    assert writing.meta["category"] == "writing" and writing.meta["group"] == "mt_bench"
    assert writing.meta["turns"] == ["Write a blog post.", "Rewrite it."]
    assert next(e for e in examples if e.id == "161").reference == ""
    assert {e.id for e in get_examples("specbench", 10, path=path, category="mt_bench")} == {"81", "82"}
    assert [e.id for e in get_examples("specbench", 10, path=path, category="rag")] == ["481"]
    with pytest.raises(SwiftlabError, match="unknown Spec-Bench category 'poetry'; choose one of mt_bench"):
        get_task("specbench", path=path, category="poetry")
    with pytest.raises(SwiftlabError, match="no copy on the Hugging Face hub.*path="):
        get_task("specbench")
    only_qa = write_jsonl(tmp_path / "qa.jsonl", [SPEC[3]])
    with pytest.raises(SwiftlabError, match="no Spec-Bench question .* category 'rag'"):
        get_examples("specbench", 1, path=only_qa, category="rag")


# ----- errors ---------------------------------------------------------------------------------------
def test_corrupt_line_reports_its_number(tmp_path):
    path = tmp_path / "gsm.jsonl"
    good = [json.dumps(r) for r in gsm_rows(7)]
    path.write_text("\n".join(good[:3] + ["", '{"question": "broken", '] + good[3:]) + "\n")
    with pytest.raises(SwiftlabError, match=r"corrupt dataset file .*gsm\.jsonl: line 5 is not valid JSON"):
        get_examples("gsm8k", 1, path=path)
    path.write_text(good[0] + "\n[1, 2]\n")
    with pytest.raises(SwiftlabError, match="line 2 is a JSON list, not an object"):
        get_examples("gsm8k", 1, path=path)
    bad_json = tmp_path / "cnn.json"
    bad_json.write_text('[{"article": "a",\n "highlights": }]')
    with pytest.raises(SwiftlabError, match="corrupt dataset file .*invalid JSON at line 2"):
        get_examples("cnndm", 1, path=bad_json)


@pytest.mark.parametrize("task, rows, field", [
    ("gsm8k", [{"question": "q", "answer": "#### 1"}, {"question": "q2"}], "answer"),
    ("cnndm", [{"article": "a", "highlights": "h"}, {"highlights": "h"}], "article"),
    ("tinystories", [{"text": "A. B."}, {"story": "A. B."}], "text"),
    ("humaneval", [HUMANEVAL[0], {k: v for k, v in HUMANEVAL[1].items() if k != "entry_point"}], "entry_point"),
    ("specbench", [SPEC[0], {"question_id": 9, "category": "qa"}], "turns"),
])
def test_missing_field_is_named_with_its_line(tmp_path, task, rows, field):
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(SwiftlabError, match=rf"line 2 of .*data\.jsonl has no field '{field}'"):
        get_examples(task, 1, path=path, **({"shots": 0} if task in ("gsm8k", "cnndm", "tinystories") else {}))


def test_wrong_types_and_formats(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", [{"question": 5, "answer": "#### 1"}])
    with pytest.raises(SwiftlabError, match="field 'question' in line 1 .* must be a string, got int"):
        get_examples("gsm8k", 1, path=path, shots=0)
    csv = tmp_path / "gsm.csv"
    csv.write_text("question,answer\n")
    with pytest.raises(SwiftlabError, match="unsupported format '.csv'"):
        get_examples("gsm8k", 1, path=csv)
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SwiftlabError, match="not UTF-8"):
        get_examples("gsm8k", 1, path=binary)
    with pytest.raises(SwiftlabError, match="no option.*shot; it takes path, shots"):
        get_task("gsm8k", path=path, shot=3)


def test_missing_file(tmp_path):
    with pytest.raises(SwiftlabError, match=r"dataset file .*nope\.jsonl does not exist"):
        get_examples("gsm8k", 1, path=tmp_path / "nope.jsonl")
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    with pytest.raises(SwiftlabError, match="is a directory"):
        get_examples("gsm8k", 1, path=folder)


def test_parquet_without_pyarrow_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "gsm.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(SwiftlabError, match="needs pyarrow"):
        get_examples("gsm8k", 1, path=path)


# ----- the hub path, without a network -------------------------------------------------------------
def test_without_the_datasets_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now raises ImportError
    for task in ("gsm8k", "cnndm", "tinystories", "humaneval"):
        with pytest.raises(SwiftlabError, match="pip install datasets.*path="):
            get_examples(task, 1)


def fake_datasets(monkeypatch, splits, calls):
    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        if split not in splits:
            raise ConnectionError(f"no network\nsecond line of detail for {split}")
        return splits[split]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


def test_hub_splits_and_shots_from_train(monkeypatch):
    calls = []
    train, test = gsm_rows(6), gsm_rows(8)[6:]
    fake_datasets(monkeypatch, {"train": train, "test": test}, calls)
    heldout = get_examples("gsm8k", 5)
    assert ("openai/gsm8k", "main", "test") in calls and ("openai/gsm8k", "main", "train") in calls
    assert sorted(e.answer for e in heldout) == ["76", "77"]
    assert all(e.prompt.startswith("Question: Q0:") and e.prompt.count("Question:") == 6 for e in heldout)
    # train queries take their demonstrations from train too, never themselves
    q0 = next(e for e in get_examples("gsm8k", 6, split="train") if e.answer == "70")
    assert q0.prompt.startswith("Question: Q1:") and q0.prompt.count("Q0:") == 1


def test_hub_errors_are_one_line(monkeypatch):
    calls = []
    fake_datasets(monkeypatch, {}, calls)
    with pytest.raises(SwiftlabError) as err:
        get_examples("cnndm", 1)
    assert "abisee/cnn_dailymail" in str(err.value) and "ConnectionError: no network" in str(err.value)
    assert "\n" not in str(err.value)
    fake_datasets(monkeypatch, {"test": HUMANEVAL}, calls)
    with pytest.raises(SwiftlabError, match="humaneval has no 'train' split on the hub"):
        get_examples("humaneval", 1, split="train")
    assert len(get_examples("humaneval", 5)) == 3
    fake_datasets(monkeypatch, {"validation": [{"text": t} for t in STORIES], "train": [{"text": "Shot. Story."}]},
                  calls)
    story = get_examples("tinystories", 1)[0]
    assert calls[-2:] == [("roneneldan/TinyStories", None, "validation"), ("roneneldan/TinyStories", None, "train")]
    assert story.prompt.startswith("Story: Shot. Story.\n\nStory: ")


def test_classes_work_without_the_registry(tmp_path):
    # The module's classes are usable directly (e.g. from a notebook), not only through get_examples.
    path = write_jsonl(tmp_path / "gsm.jsonl", gsm_rows(6))
    assert [e.answer for e in Gsm8k(path=path).examples("heldout", 6, seed=4)] == \
        [e.answer for e in get_examples("gsm8k", 6, seed=4, path=path)]
