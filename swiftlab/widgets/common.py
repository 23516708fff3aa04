"""What every widget does the same way: check its skip set when it is built, and show an error raised by a
click or a slider inside the widget.

ipywidgets sends an exception raised in a callback to the kernel's log, which JupyterLab keeps out of the
notebook: a button whose work fails would just do nothing. `ErrorLine.guard` catches it and writes one red
line in the widget instead; the next callback that succeeds clears it.
"""

from __future__ import annotations

import html
from typing import Callable

import ipywidgets as w

from ..models.adapters import num_layers
from ..support.errors import SwiftlabError
from ..engine.skipping import check_skip_set
from ..engine.skipset import SkipSet

DEFAULT_RATIO = 0.45


def widget_skip_set(model, skip_set: SkipSet | None, ratio: float = DEFAULT_RATIO) -> SkipSet:
    """The skip set a widget drafts with, checked against the model now rather than at the first click:
    the uniform set at `ratio` when none is given."""
    if skip_set is None:
        return SkipSet.uniform(num_layers(model), ratio)
    if not isinstance(skip_set, SkipSet):
        raise SwiftlabError(f"skip_set must be a SkipSet, got {type(skip_set).__name__}")
    check_skip_set(model, skip_set)
    return skip_set


def error_text(error: Exception) -> str:
    """One line: a SwiftlabError's own message, anything else with its type."""
    if isinstance(error, SwiftlabError):
        return str(error)
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__


class ErrorLine(w.HTML):
    """Empty until a guarded callback fails; then that failure, in one red line."""

    def guard(self, callback: Callable) -> Callable:
        """`callback` wrapped for ipywidgets: an exception it raises is shown in this line and swallowed (the
        wrapper returns None); a call that succeeds clears the line and returns the callback's result."""
        def guarded(*args, **kwargs):
            try:
                result = callback(*args, **kwargs)
            except Exception as e:  # the user's click: show it where they look
                self.show(e)
                return None
            self.value = ""
            return result

        return guarded

    def show(self, error: Exception) -> None:
        """Show `error` as one red line (`error_text`, HTML-escaped)."""
        self.value = f"<span style='color:#b00'>error: {html.escape(error_text(error))}</span>"
