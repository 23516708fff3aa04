"""Streaming: each verified chunk reaches a transformers streamer as it is accepted, and nothing else."""

import threading

import pytest
import torch
from transformers import TextIteratorStreamer

from swiftlab import SkipSet, SwiftlabError, load_model, num_layers
from swiftlab.api import generate
from swiftlab.engine.streaming import StreamerError


@pytest.fixture(scope="module")
def lab():
    return load_model("lab")


class Recorder:
    def __init__(self):
        self.puts, self.ended = [], 0

    def put(self, value):
        self.puts.append(value.tolist())

    def end(self):
        self.ended += 1


@pytest.mark.parametrize("method", ["ar", "swift"])
def test_streamer_gets_the_prompt_then_every_verified_chunk(lab, method):
    model, tokenizer = lab
    rec = Recorder()
    result = generate(model, tokenizer, "Once upon a time", method=method, max_new_tokens=40, streamer=rec,
                      skip_set=SkipSet.uniform(num_layers(model), 0.3) if method == "swift" else None)
    assert rec.puts[0] == [result.prompt_ids]  # as transformers' generate() sends it: batch of one
    chunks = rec.puts[1:]
    assert [t for chunk in chunks for t in chunk] == result.token_ids
    assert len(chunks) == result.steps and rec.ended == 1
    if method == "swift":
        assert max(len(c) for c in chunks) > 1  # SWIFT verifies several tokens per pass


def test_text_iterator_streamer_reads_the_same_text(lab):
    model, tokenizer = lab
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    box = {}
    worker = threading.Thread(target=lambda: box.update(r=generate(model, tokenizer, "The little dog",
                                                                   max_new_tokens=40, streamer=streamer)))
    worker.start()
    text = "".join(streamer)
    worker.join()
    assert text.strip() == box["r"].text.strip()


class Breaks(Recorder):
    def put(self, value):
        if len(self.puts) == 3:
            raise ValueError("disk full")
        super().put(value)


def test_a_streamer_that_raises_stops_with_one_clear_error_and_a_pristine_model(lab):
    model, tokenizer = lab
    before = {name: set(module.__dict__) for name, module in model.named_modules()}
    rec = Breaks()
    with pytest.raises(StreamerError, match=r"the streamer \(Breaks.put\) raised ValueError: disk full"):
        generate(model, tokenizer, "Once upon a time", max_new_tokens=40, streamer=rec)
    assert rec.ended == 1  # a reader waiting on the streamer is released
    assert {name: set(module.__dict__) for name, module in model.named_modules()} == before
    plain = generate(model, tokenizer, "Once upon a time", method="ar", max_new_tokens=20)
    again = generate(model, tokenizer, "Once upon a time", max_new_tokens=20)
    assert again.token_ids == plain.token_ids


def test_not_a_streamer(lab):
    model, tokenizer = lab
    with pytest.raises(SwiftlabError, match="streamer str has no put"):
        generate(model, tokenizer, "Hi", max_new_tokens=4, streamer="stdout")
