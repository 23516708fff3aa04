"""The command line's checks, kept out of cli.py: value rules per option, one-line usage errors, and
the pre-flight checks each command makes before it loads a model or starts a long run (so a bad
destination fails in a second, not after the search it was meant to keep)."""

from __future__ import annotations

import argparse
import math
import sys
import types
from pathlib import Path

from .support.errors import SwiftlabError


def _integer(minimum: int):
    def parse(text: str) -> int:
        """An argparse `type` for a whole-number option (`positive`: at least 1, `non_negative`: at least 0);
        anything else raises argparse.ArgumentTypeError, which argparse reports as a usage error."""
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _number(low: float | None = None, high: float | None = None, low_open: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if (low is not None and (value <= low if low_open else value < low)) or (high is not None and value > high):
            if high is None:
                raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low:g}, got {text}")
            raise argparse.ArgumentTypeError(f"must be in {'(' if low_open else '['}{low:g}, {high:g}], got {text}")
        return value
    return parse


positive = _integer(1)
non_negative = _integer(0)

# option dest -> parser, applied wherever a subcommand has that option (so the rules live in one table
# and cli.py's argparse lines stay as they are)
RULES = {
    "max_new_tokens": positive, "prompts": positive, "repeats": positive, "n": positive, "window": positive,
    "candidates": positive, "bayes_interval": positive, "max_steps": positive, "tolerance": positive,
    "max_draft": positive, "exit_layer": positive, "steps": positive, "layers": positive, "hidden": positive,
    "batch_size": positive, "eval_n": positive, "lookup": non_negative, "top_k": non_negative,
    "seed": non_negative, "warmup": non_negative,
    "temperature": _number(0.0), "top_p": _number(0.0, 1.0, low_open=True), "epsilon": _number(0.0, 1.0),
    "skip_ratio": _number(0.0, 1.0), "search_share": _number(0.0, 1.0, low_open=True), "max_score": _number(), "lr": _number(0.0, low_open=True),
}


def harden(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Apply RULES to every (sub)command's options and make usage errors one `swiftlab: error:` line."""
    parser.error = types.MethodType(_one_line_error, parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                harden(sub)
        elif action.dest in RULES and action.type in (int, float):
            action.type = RULES[action.dest]
    return parser


def _one_line_error(parser: argparse.ArgumentParser, message: str):
    command = parser.prog.removeprefix("swiftlab").strip()
    where = f"{command}: " if command else ""
    print(f"swiftlab: error: {where}{message} (see `{parser.prog} --help`)", file=sys.stderr)
    raise SystemExit(2)


# ----- pre-flight: everything that can be checked before a model is loaded ----------------------
def preflight(args) -> None:
    """Check what can be checked before a model is loaded: the --device, bench's --methods and output files,
    the probe's name and --out, figures' options, optimize's --out or store. Raises SwiftlabError; a greedy
    `generate` given --top-p or --top-k gets a note on stderr instead."""
    from .support import validate
    from .support.storage import check_writable

    if getattr(args, "device", None) is not None:
        validate.device(args.device)
    if args.command == "generate" and args.temperature == 0 and (args.top_p != 1.0 or args.top_k != 0):
        print("swiftlab: note: --top-p and --top-k only apply when sampling (--temperature > 0); "
              "greedy decoding ignores them", file=sys.stderr)
    if args.command == "bench":
        if not [m for m in args.methods.split(",") if m.strip()]:
            raise SwiftlabError(f"--methods {args.methods!r} names no method")
        check_writable(args.out, "results file (--out)")
        if args.specbench:
            check_writable(args.specbench, "--specbench file")
    if args.command == "probe":
        from .analysis.experiments import PROBES

        if args.name not in PROBES:
            raise SwiftlabError(f"unknown probe {args.name!r}; choose from {', '.join(PROBES)}")
        check_writable(args.out, "probe record (--out)", must_exist_folder=False)
    if args.command == "figures":
        _figures_preflight(args)
    if args.command == "optimize":
        if args.out:
            check_writable(args.out, "skip-set file (--out)", must_exist_folder=False)
        else:
            from .search.store import SkipSetStore

            SkipSetStore(args.store).check()  # a corrupt or unwritable store fails now, not after the search


def _figures_preflight(args) -> None:
    if not args.source and not args.model:
        raise SwiftlabError("give --from DIR (redraw saved records) or --model M (run every probe)")
    if args.source and args.model:
        raise SwiftlabError("give --from DIR (redraw saved records) or --model M (run every probe), not both")
    if args.source and not Path(args.source).is_dir():
        raise SwiftlabError(f"--from {args.source}: no such folder")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SwiftlabError(f"--out {out} is a file; figures go in a folder")
