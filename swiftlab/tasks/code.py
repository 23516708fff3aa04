"""The code task: HumanEval-like completion over real functions from the local Python stdlib.

HumanEval gives a model a function's signature and docstring and asks for the body. Rather than
generate toy functions, we take real functions from the standard library source that ships with
this interpreter: the code is human-written, varied, and needs no download. Files are
parsed with `ast` and never imported (importing would run module code, and some modules - tkinter,
turtle, antigravity - have side effects or missing dependencies).

Each example's prompt is the `def` line(s) plus the docstring exactly as in the source (methods
de-indented so they read as a top-level `def`); the reference is the rest of the function.
prompt + reference is the whole function and parses on its own.

Module-level functions alone are too few: with the size filters below, the 3.11 stdlib has ~550 of
them, ~100 held out, and an evaluation wants a few hundred held-out prompts. So by default we also
take plain methods of module-level classes (self/cls first parameter included). They are still
real, self-contained code text - which is what speculative decoding is measured on - but their
bodies refer to attributes the prompt does not show. `CodeTask(methods=False)` gives the strict,
functions-only pool; `meta["kind"]` says which each example is.

Splits are decided by the function's qualified name (module.function, or module.Class.method),
so a function is either train or held-out regardless of seed. The candidate pool depends on the
interpreter's stdlib, so counts differ between Python versions; on one machine they are fixed.
"""

from __future__ import annotations

import ast
import functools
import gc
import os
import sysconfig
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from .base import Example, check_split, content_id, rng_stream, take_split

NAME = "code"

# Directories that are tests, GUI/demo code, vendored wheels or third-party installs: not the kind
# of self-contained library code we want, and some contain deliberately broken syntax.
SKIP_DIRS = frozenset({
    "test", "tests", "idlelib", "lib2to3", "tkinter", "turtledemo", "ensurepip", "site-packages",
    "dist-packages", "__pycache__", "pydoc_data", "lib-dynload", "__phello__",
})

# Size filters: large enough to be a real completion task, small enough to fit a short generation
# budget and a small model's context.
MIN_BODY_LINES, MAX_BODY_LINES = 3, 25
MIN_DOC_LINES, MAX_DOC_LINES = 1, 15
MAX_CHARS = 1200


@dataclass(frozen=True)
class _Candidate:
    module: str
    cls: str | None  # the class a method belongs to; None for a module-level function
    function: str
    path: str  # relative to the stdlib root, posix separators
    prompt: str
    reference: str

    @property
    def qualname(self) -> str:
        return ".".join(p for p in (self.module, self.cls, self.function) if p)


def _module_name(rel_parts: tuple[str, ...]) -> str | None:
    """Dotted module name for a relative file path, or None for private/unimportable modules."""
    parts = list(rel_parts[:-1])
    stem = rel_parts[-1][:-3]  # strip ".py"
    if stem != "__init__":
        parts.append(stem)
    if not parts:
        return None
    # A leading underscore marks private modules (_pyio, _pydecimal, __main__ ...) - the same rule as
    # for function names; a name that is not an identifier (config-3.11-x86_64-linux-gnu) cannot
    # be imported as a module at all.
    if any(p.startswith("_") or not p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


def _iter_source_files(root: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(absolute path, relative parts) for every .py file under root, in sorted order."""
    for dirpath, dirnames, filenames in os.walk(root):
        # Sorting in place makes os.walk's traversal (and so the candidate order) deterministic;
        # pruning here keeps us from even listing the skipped trees.
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        rel_dir = os.path.relpath(dirpath, root)
        rel_parts = () if rel_dir == "." else tuple(rel_dir.split(os.sep))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name), rel_parts + (name,)


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements at module level, looking inside top-level if/try (platform variants)."""
    for node in body:
        if isinstance(node, ast.If):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body)
            for handler in node.handlers:
                yield from _top_level(handler.body)
            yield from _top_level(node.orelse)
            yield from _top_level(node.finalbody)
        else:
            yield node


def _definitions(tree: ast.Module, methods: bool) -> Iterator[tuple[str | None, ast.FunctionDef]]:
    """(class name or None, function) for module-level functions and, if asked, their classes' methods."""
    for node in _top_level(tree.body):
        if isinstance(node, ast.FunctionDef):
            yield None, node
        elif methods and isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            # Only methods directly in the class body: a method under an `if` inside a class, or
            # in a nested class, is rare and not worth the extra cases.
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    yield node.name, item


def _dedent(lines: list[str], col: int) -> list[str] | None:
    """Remove exactly `col` leading spaces from each line; None if a line has less indentation.

    A line with less indentation than the `def` can only be inside a multi-line string; removing a
    different amount would change the string, so such functions are rejected rather than mangled.
    """
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
        elif line[:col] == " " * col:
            out.append(line[col:])
        else:
            return None
    return out


def _has_nested_definition(fn: ast.FunctionDef) -> bool:
    for node in ast.walk(fn):
        if node is not fn and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return True
    return False


def _candidate(fn: ast.FunctionDef, cls: str | None, lines: list[str], module: str,
               path: str) -> _Candidate | None:
    """The example for one function or method, or None if it fails a filter."""
    if fn.name.startswith("_") or fn.decorator_list:
        # Private and dunder names are internals; decorators (contextmanager, property,
        # staticmethod, cache ...) change what the body means and would be cut off the prompt.
        return None
    args = fn.args.posonlyargs + fn.args.args
    if cls is None and args and args[0].arg in ("self", "cls"):
        return None  # a method body assigned at module level: it only makes sense on some class
    if ast.get_docstring(fn, clean=False) is None or len(fn.body) < 2:
        return None  # no docstring, or nothing but a docstring
    doc, first = fn.body[0], fn.body[1]
    doc_lines = doc.end_lineno - doc.lineno + 1
    if not MIN_DOC_LINES <= doc_lines <= MAX_DOC_LINES:
        return None
    # The docstring must sit on its own lines: nothing before it on its first line (not on the
    # `def ...:` line), nothing after its closing quotes, and the body starting on a later line.
    # Otherwise the prompt/reference cut would split a line in two.
    if first.lineno <= doc.end_lineno:
        return None
    before_doc = lines[doc.lineno - 1][:doc.col_offset]
    after_doc = lines[doc.end_lineno - 1][doc.end_col_offset:]
    if before_doc.strip() or after_doc.strip():
        return None
    head = _dedent(lines[fn.lineno - 1:doc.end_lineno], fn.col_offset)
    tail = _dedent(lines[doc.end_lineno:fn.end_lineno], fn.col_offset)
    if head is None or tail is None:
        return None
    # Trailing comment-only lines between the docstring and the first statement stay in the body;
    # blank lines at the end cannot occur (end_lineno is the last statement's line).
    if not MIN_BODY_LINES <= len(tail) <= MAX_BODY_LINES:
        return None
    # The prompt stops at the docstring's closing quotes and the reference starts with the newline:
    # byte-level BPE merges a newline with the indentation after it, so a prompt ending in a bare "\n"
    # ends on a token that, in training text, only comes before the end of a document (the model then
    # stops at once). Cut here, the model continues with the same newline+indent token it learnt.
    prompt = "\n".join(head)
    reference = "\n" + "\n".join(tail) + "\n"
    source = prompt + reference
    if len(source) >= MAX_CHARS or not source.isascii() or "\t" in source:
        return None
    if _has_nested_definition(fn):  # checked late: walking the tree is the costliest filter
        return None
    # Belt and braces: the cut must give back a standalone, parseable definition of this function.
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef) or tree.body[0].name != fn.name:
        return None
    return _Candidate(module=module, cls=cls, function=fn.name, path=path, prompt=prompt,
                      reference=reference)


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: building millions of AST nodes otherwise triggers it
    over and over (the scan takes ~2x longer). AST nodes hold no cycles, so refcounting frees them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def scan_functions(root: str, methods: bool = True) -> tuple[_Candidate, ...]:
    """Every usable function under `root`, in sorted file order, deduplicated. Cached per process."""
    # Always call the cached function positionally: lru_cache keys `f(r)` and `f(r, True)`
    # differently, which would scan the stdlib twice.
    return _scan_cached(str(root), bool(methods))


@functools.lru_cache(maxsize=None)
def _scan_cached(root: str, methods: bool) -> tuple[_Candidate, ...]:
    with _gc_paused():
        return _scan(root, methods)


def _scan(root: str, methods: bool) -> tuple[_Candidate, ...]:
    out: list[_Candidate] = []
    seen_sources: set[str] = set()
    seen_names: set[str] = set()
    for abspath, rel_parts in _iter_source_files(root):
        module = _module_name(rel_parts)
        if module is None:
            continue
        try:
            with open(abspath, "rb") as f:
                # UTF-8 is the PEP 3120 default; a file in another encoding fails here and is skipped.
                text = f.read().decode("utf-8")
            tree = ast.parse(text, filename=abspath)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue  # unreadable or not valid for this interpreter's parser: just skip it
        lines = text.splitlines()
        path = "/".join(rel_parts)
        for cls, fn in _definitions(tree, methods):
            cand = _candidate(fn, cls, lines, module, path)
            if cand is None:
                continue
            source = cand.prompt + cand.reference
            # Identical copies (a helper repeated across modules, a method repeated across
            # classes) would otherwise be two examples with different split keys, leaking one
            # function into both splits. A name defined twice (platform variants under if/else)
            # keeps its first definition.
            if source in seen_sources or cand.qualname in seen_names:
                continue
            seen_sources.add(source)
            seen_names.add(cand.qualname)
            out.append(cand)
    return tuple(out)


def stdlib_root() -> str:
    """The folder of this interpreter's standard library source (sysconfig's "stdlib" path): where
    `CodeTask` finds its functions by default."""
    return sysconfig.get_paths()["stdlib"]


class CodeTask:
    """The code task: HumanEval-like completion of the functions, and with `methods` also the plain methods
    of module-level classes, found in the Python files under `root` (default `stdlib_root()`); see the
    module docstring."""

    name = NAME
    description = ("HumanEval-like: complete the body of a real Python stdlib function "
                   "from its signature and docstring")

    def __init__(self, root: str | None = None, methods: bool = True):
        # `root` lets tests point the scanner at a small fixture tree; normally it is the stdlib.
        self.root = str(root) if root else stdlib_root()
        self.methods = methods

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """Up to `n` examples of `split` from the pool shuffled by `seed`, fewer where the split has fewer
        functions. The scan (seconds, once per process and root) runs after `split` is checked; an unknown
        split or a negative `n` is a SwiftlabError."""
        check_split(split)  # before the scan, so a typo fails at once rather than after seconds
        pool = list(scan_functions(self.root, self.methods))
        rng_stream(NAME, seed).shuffle(pool)

        def candidates() -> Iterator[tuple[str, Example]]:
            for c in pool:
                # Examples are built fresh per call so a caller mutating `meta` cannot touch the cache.
                yield c.qualname, Example(
                    task=NAME,
                    id=content_id(NAME, c.qualname, c.prompt + c.reference),
                    prompt=c.prompt,
                    reference=c.reference,
                    meta={"module": c.module, "function": c.function, "path": c.path,
                          "class": c.cls, "qualname": c.qualname,
                          "kind": "function" if c.cls is None else "method"},
                )

        # take_split returns early (fewer than n) when the iterator runs out, which is what we want
        # when a split has fewer functions than asked for.
        return take_split(candidates(), split, n, NAME)
