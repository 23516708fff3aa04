"""Verified tokens to a transformers streamer as they are accepted.

A streamer (`transformers.TextStreamer`, `TextIteratorStreamer`, or anything with `put(tensor)` and
`end()`) is fed the way transformers' own generate() feeds it: the prompt ids once, then each pass's new
tokens, then `end()`. SWIFT emits a chunk of tokens per full-model pass, so each `put` may carry several
tokens (transformers' text streamers accept a 1-D tensor of any length). The chunk is sent only after the
full model has verified it, so a streamed token is never taken back.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..support.errors import SwiftlabError


class StreamerError(SwiftlabError):
    """The user's streamer raised: decoding stopped there, the model left as found."""


def check_streamer(streamer) -> None:
    """Raise a SwiftlabError unless `streamer` has callable `put` and `end` methods, as transformers'
    streamers do."""
    for method in ("put", "end"):
        if not callable(getattr(streamer, method, None)):
            raise SwiftlabError(f"streamer {type(streamer).__name__} has no {method}() method: give a "
                                "transformers streamer (TextStreamer, TextIteratorStreamer) or an object with put() and end()")


def _call(streamer, method: str, *args) -> None:
    try:
        getattr(streamer, method)(*args)
    except Exception as e:  # the user's code: name it, keep the cause
        raise StreamerError(f"the streamer ({type(streamer).__name__}.{method}) raised "
                            f"{type(e).__name__}: {e}") from e


class StreamTo:
    """An `on_step` hook (decoding.decode, SwiftStream.decode) that sends every pass's tokens to `streamer`.
    `start()` sends the prompt, `finish()` calls end(); a streamer that raises stops decoding with a
    StreamerError naming it."""

    def __init__(self, streamer, prompt_ids: list[int]):
        check_streamer(streamer)
        self.streamer, self.prompt_ids = streamer, list(prompt_ids)

    def start(self) -> None:
        """Send the prompt ids as one [1, n] tensor, as transformers' generate does before any new token."""
        _call(self.streamer, "put", torch.tensor([self.prompt_ids], dtype=torch.long))

    def __call__(self, event) -> None:
        if event.new_tokens:
            _call(self.streamer, "put", torch.tensor(event.new_tokens, dtype=torch.long))

    def finish(self) -> None:
        """Call the streamer's `end()` once the run is over; a streamer that raises gives a StreamerError."""
        _call(self.streamer, "end")


def streamed(streamer, prompt_ids: list[int], run: Callable[[Callable | None], object]):
    """`run(on_step)` with every pass's tokens sent to `streamer` (None: no streaming), end() called once the run
    has ended, also when it was interrupted, so a TextIteratorStreamer's reader never waits forever."""
    if streamer is None:
        return run(None)
    hook = StreamTo(streamer, prompt_ids)
    hook.start()
    try:
        result = run(hook)
    except BaseException:
        try:
            streamer.end()
        except Exception:  # the run's own error is the one to report
            pass
        raise
    hook.finish()
    return result
