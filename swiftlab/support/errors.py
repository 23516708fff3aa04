"""The one exception type swiftlab raises for bad input.

Every user mistake (unknown model, unsupported architecture, index out of range, prompt too long,
corrupt file) becomes a `SwiftlabError` with a one-line message; the CLI prints that line and exits
non-zero instead of showing a traceback from deep inside torch.
"""


class SwiftlabError(ValueError):
    """Bad input or an unsupported request, explained in one line."""
