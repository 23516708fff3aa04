"""What swiftlab takes from the environment, read in one place and checked.

SWIFTLAB_HOME  the root of everything swiftlab writes unless told otherwise: converted models (models/) and
               the skip-set store (skip_layers.json). Default ~/.cache/swiftlab.
SWIFTLAB_STORE the skip-set store file, where it should live apart from SWIFTLAB_HOME.
SWIFTLAB_QUICK 1: notebooks and benchmarks at smoke-test sizes; 0 or unset: full sizes. Anything else is an
               error rather than a silent "full size".
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SwiftlabError

TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def home() -> Path:
    """The root folder swiftlab writes to: $SWIFTLAB_HOME (~ expanded), else ~/.cache/swiftlab; not created here."""
    value = os.environ.get("SWIFTLAB_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "swiftlab"


def store_path() -> Path:
    """The skip-set store file: $SWIFTLAB_STORE (~ expanded), else skip_layers.json under `home()`."""
    value = os.environ.get("SWIFTLAB_STORE")
    return Path(value).expanduser() if value else home() / "skip_layers.json"


def quick() -> bool:
    """Whether $SWIFTLAB_QUICK asks for smoke-test sizes (1, true, yes, on) or full sizes (0, false, no, off or
    unset); a SwiftlabError for anything else."""
    value = os.environ.get("SWIFTLAB_QUICK", "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise SwiftlabError(f"SWIFTLAB_QUICK={os.environ['SWIFTLAB_QUICK']!r} is neither 1 (quick, smoke-test sizes) "
                        "nor 0 (full sizes)")
