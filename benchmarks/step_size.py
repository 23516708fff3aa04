"""How much code one greedy tree step runs: this checkout against another, on the lab model.

    .venv/bin/python benchmarks/step_size.py [/tmp/before]

Traces one SWIFT step (skip drafts through the lean drafter, tree verification, greedy; after the prompt
pass) with sys.settrace and prints, for each checkout, the swiftlab functions it entered: their code
lines (blank lines, comments and docstrings left out), their conditionals (`if` statements, conditional
expressions and comprehension filters, `while` loops), and the files they sit in. The same count for
both, so the two numbers compare; it says nothing about speed.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
import textwrap
from pathlib import Path

from before_after import import_as  # benchmarks/, next to this script

import swiftlab
from swiftlab import load_model, num_layers


def entered_functions(package, model, ids) -> set:
    # the package's top-level names, which both the flat and the layered layouts export
    session = package.DecodeSession(model, ids, skip_set=package.SkipSet.uniform(num_layers(model), 0.45),
                                    max_new_tokens=32)  # SwiftParams() as decode uses it
    session.step()  # the prompt pass
    root, seen = str(Path(package.__file__).parent), set()

    def trace(frame, event, arg):
        # comprehensions and lambdas are counted with the function they sit in
        if event == "call" and frame.f_code.co_filename.startswith(root) and not frame.f_code.co_name.startswith("<"):
            seen.add(frame.f_code)
        return None

    sys.settrace(trace)
    try:
        session.step()
    finally:
        sys.settrace(None)
    return seen


def size(code) -> tuple[int, int]:
    """(code lines, conditionals) of one function, its docstring, comments and blank lines left out."""
    try:
        source = textwrap.dedent(inspect.getsource(code))
    except (OSError, TypeError):
        return 0, 0
    tree = ast.parse(source)
    node = tree.body[0]
    docstring = set()
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        docstring = set(range(body[0].lineno, body[0].end_lineno + 1))
    lines = sum(1 for i, line in enumerate(source.splitlines(), start=1)
                if line.strip() and not line.strip().startswith("#") and i not in docstring)
    conditionals = sum(isinstance(n, (ast.If, ast.IfExp, ast.While)) for n in ast.walk(node))
    conditionals += sum(len(n.ifs) for n in ast.walk(node) if isinstance(n, ast.comprehension))
    return lines, conditionals


def report(label: str, functions: set) -> None:
    sizes = [size(code) for code in functions]
    files = sorted({Path(code.co_filename).name for code in functions})
    print(f"{label}: {len(functions)} functions, {sum(s[0] for s in sizes)} code lines, "
          f"{sum(s[1] for s in sizes)} conditionals, {len(files)} files ({', '.join(files)})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", type=Path, nargs="?", help="a checkout (or `git archive` of one) to compare with")
    args = p.parse_args()
    model, tokenizer = load_model("lab")
    ids = tokenizer("Story: Once upon a time, there was a little girl named Anna.")["input_ids"]
    if args.before is not None:
        report(f"before ({args.before})", entered_functions(import_as("swiftlab_before", args.before), model, ids))
    report("this checkout", entered_functions(swiftlab, model, ids))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
