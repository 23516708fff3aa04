"""The code task: real stdlib functions cut into signature+docstring prompt and body reference.

Two kinds of tests: a small hand-made source tree, where we know exactly which functions each
filter must keep or drop, and the real stdlib, where we check the properties every example must
have (it parses, the split is stable, sizes hold, there are enough held-out prompts).
"""

import ast
import gc
import re
import textwrap
from pathlib import Path

import pytest

from swiftlab.support.errors import SwiftlabError
from swiftlab.tasks.base import split_of
from swiftlab.tasks.code import (MAX_BODY_LINES, MAX_CHARS, MAX_DOC_LINES, MIN_BODY_LINES, MIN_DOC_LINES,
                                 CodeTask, scan_functions, stdlib_root)

BIG = 100_000  # more than any split holds: asks for "everything"


# ----- a hand-made tree: every filter, one function each ----------------------------------------

GOOD = '''
def add_all(values, start=0):
    """Add up values, starting from start."""
    total = start
    for v in values:
        total += v
    return total
'''

FIXTURE = {
    "mod.py": GOOD + '''

def multi_line_signature(first,
                         second):
    """Docstring after a two-line signature.

    With a second paragraph.
    """
    pair = (first, second)
    joined = list(pair)
    return joined


if True:
    def platform_variant(x):
        """Defined under a top-level if, so indented in the file."""
        y = x + 1
        z = y * 2
        return z


class Shape:
    def area(self, scale):
        """Area of the shape times scale."""
        w = self.width * scale
        h = self.height * scale
        return w * h

    @property
    def decorated_method(self):
        """Decorated: the decorator would be lost from the prompt."""
        a = 1
        b = 2
        return a + b

    def _private_method(self):
        """Private."""
        a = 1
        b = 2
        return a + b


def stray_method(self, x):
    """Module-level but takes self: only meaningful on some class."""
    a = self.x
    b = a + x
    return b


def _private(x):
    """Private helper."""
    a = x
    b = a
    return b


@staticmethod
def decorated(x):
    """Decorated."""
    a = x
    b = a
    return b


def nested(x):
    """Has an inner function."""
    def inner(y):
        return y
    a = inner(x)
    return a


def short_body(x):
    """Only two body lines."""
    a = x
    return a


def long_body(x):
    """Twenty-six body lines."""
''' + "".join(f"    x = x + {i}\n" for i in range(25)) + '''    return x


def long_doc(x):
    """Sixteen docstring lines.
''' + "".join(f"    line {i}\n" for i in range(14)) + '''    """
    a = x
    b = a
    return b


def long_chars(x):
    """Too many characters in all."""
''' + "".join(f"    x = x + {'1' * 90}\n" for i in range(12)) + '''    return x


def not_ascii(x):
    """Caf\u00e9."""
    a = x
    b = a
    return b


def doc_on_def_line(x): """Docstring on the def line."""; a = 1; return a


def no_docstring(x):
    a = x
    b = a
    return b


async def coroutine(x):
    """Async functions are not plain defs; left out."""
    a = x
    b = a
    return b
''',
    # The exact same function in a later file: a duplicate, kept once (first in sorted order).
    "other.py": GOOD,
    "pkg/__init__.py": '''
def package_level(x):
    """In a package's __init__: module name is the package."""
    a = x
    b = a
    return b
''',
    "_private_module.py": GOOD.replace("add_all", "in_private_module"),
    "test/test_thing.py": GOOD.replace("add_all", "in_test_dir"),
    "broken.py": "def broken(:\n    pass\n",  # a syntax error must be skipped, not crash the scan
}

EXPECTED_FUNCTIONS = {"mod.add_all", "mod.multi_line_signature", "mod.platform_variant", "pkg.package_level"}
EXPECTED_METHODS = {"mod.Shape.area"}


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake-stdlib")
    for rel, text in FIXTURE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def everything(task):
    return task.examples("train", BIG) + task.examples("heldout", BIG)


def test_filters_keep_exactly_the_right_functions(fixture_root):
    got = {e.meta["qualname"] for e in everything(CodeTask(root=fixture_root))}
    assert got == EXPECTED_FUNCTIONS | EXPECTED_METHODS
    strict = {e.meta["qualname"] for e in everything(CodeTask(root=fixture_root, methods=False))}
    assert strict == EXPECTED_FUNCTIONS
    assert gc.isenabled()  # the scan pauses the collector; it must turn it back on


def test_fixture_cut_is_exact(fixture_root):
    by_name = {e.meta["qualname"]: e for e in everything(CodeTask(root=fixture_root))}
    good = by_name["mod.add_all"]
    assert good.prompt == 'def add_all(values, start=0):\n    """Add up values, starting from start."""'
    assert good.reference == "\n    total = start\n    for v in values:\n        total += v\n    return total\n"
    assert good.meta == {"module": "mod", "function": "add_all", "path": "mod.py", "class": None,
                         "qualname": "mod.add_all", "kind": "function"}
    # Indented definitions come back de-indented, as if written at top level.
    assert by_name["mod.platform_variant"].prompt.startswith("def platform_variant(x):\n    \"\"\"")
    assert by_name["mod.Shape.area"].prompt.startswith("def area(self, scale):\n    \"\"\"")
    assert by_name["mod.Shape.area"].meta["kind"] == "method"
    assert by_name["mod.multi_line_signature"].prompt.startswith(
        "def multi_line_signature(first,\n                         second):\n")


# ----- the real stdlib ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def task():
    return CodeTask()


@pytest.fixture(scope="module")
def heldout(task):
    return task.examples("heldout", 300)


@pytest.fixture(scope="module")
def train(task):
    return task.examples("train", 300)


def test_enough_heldout_examples(heldout):
    # An evaluation wants a few hundred held-out prompts; the pool is the local stdlib, so this
    # guards against filters (or a different Python) quietly shrinking it.
    assert len(heldout) >= 200


def test_same_seed_same_examples_other_seed_other_order(task):
    a = task.examples("train", 50, seed=0)
    assert a == task.examples("train", 50, seed=0)
    b = task.examples("train", 50, seed=1)
    assert [e.id for e in a] != [e.id for e in b]
    # The seed only reorders: asking for everything gives the same set, in a different order.
    all0, all1 = task.examples("heldout", BIG, seed=0), task.examples("heldout", BIG, seed=1)
    assert {e.id for e in all0} == {e.id for e in all1}
    assert [e.id for e in all0] != [e.id for e in all1]


def test_splits_never_share_a_function(train, heldout):
    assert len(train) == 300
    train_names = {e.meta["qualname"] for e in train}
    held_names = {e.meta["qualname"] for e in heldout}
    assert not train_names & held_names
    # Nor the same code under another name: duplicates are removed before splitting.
    assert not {e.prompt + e.reference for e in train} & {e.prompt + e.reference for e in heldout}
    # Membership comes from the name's hash, so it cannot depend on seed or n.
    assert all(split_of(n) == "train" for n in train_names)
    assert all(split_of(n) == "heldout" for n in held_names)
    assert len({e.id for e in train + heldout}) == len(train) + len(heldout)


def test_running_out_returns_what_there_is(task, heldout):
    everything_held = task.examples("heldout", BIG)
    assert 0 < len(everything_held) < BIG
    assert len({e.id for e in everything_held}) == len(everything_held)
    if len(everything_held) < 300:  # the 300 asked for above was capped the same way
        assert len(heldout) == len(everything_held)


def test_examples_parse_and_respect_the_filters(train, heldout):
    for e in train + heldout:
        source = e.prompt + e.reference
        tree = ast.parse(source)  # raises if the cut is wrong
        assert len(tree.body) == 1 and isinstance(tree.body[0], ast.FunctionDef), e.meta
        fn = tree.body[0]
        assert fn.name == e.meta["function"] and not fn.name.startswith("_")
        assert e.meta["qualname"].endswith("." + fn.name)
        assert ast.get_docstring(fn) is not None and not fn.decorator_list
        doc = fn.body[0]
        assert MIN_DOC_LINES <= doc.end_lineno - doc.lineno + 1 <= MAX_DOC_LINES
        assert MIN_BODY_LINES <= len(e.reference.splitlines()) - 1 <= MAX_BODY_LINES  # the first line is the newline that opens the body
        assert len(source) < MAX_CHARS and source.isascii()
        inner = [n for n in ast.walk(fn) if n is not fn
                 and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not inner, e.meta
        if e.meta["kind"] == "function":
            args = fn.args.posonlyargs + fn.args.args
            assert not (args and args[0].arg in ("self", "cls")), e.meta


def test_prompt_stops_right_after_the_docstring(train, heldout):
    for e in train + heldout:
        # A model continuing the prompt writes the body next: the prompt is the def and the
        # docstring, ending with the closing quotes (the newline starts the reference, see code.py).
        assert e.prompt.startswith("def ") and e.prompt.endswith(('"""', "'''", '"', "'"))
        fn = ast.parse(e.prompt + e.reference).body[0]
        assert fn.body[0].end_lineno == e.prompt.count("\n") + 1  # the docstring is the prompt's last line
        # The body is verbatim, so it may open with a blank line the author left after the docstring.
        assert e.reference.startswith("\n") and e.reference.lstrip("\n").startswith(" ")
        assert e.reference.endswith("\n")


def _normalize(text):
    return re.sub(r"(?m)^[ \t]+$", "", text)  # whitespace-only lines become empty, as in the cut


def test_examples_are_verbatim_source(heldout):
    root = Path(stdlib_root())
    for e in heldout:
        file_text = _normalize((root / e.meta["path"]).read_text(encoding="utf-8"))
        source = e.prompt + e.reference
        # The function appears in its file exactly, once the file's indentation is added back
        # (4 spaces for a method; module-level functions under an `if` are indented too).
        assert any(textwrap.indent(source, " " * k) in file_text for k in (0, 4, 8)), e.meta


def test_bad_requests_raise(task):
    with pytest.raises(SwiftlabError):
        task.examples("test", 5)
    with pytest.raises(SwiftlabError):
        task.examples("heldout", -1)
    assert task.examples("heldout", 0) == []


def test_scan_is_cached(task):
    # The stdlib is parsed once per process; every later call reuses the same tuple.
    assert scan_functions(stdlib_root()) is scan_functions(stdlib_root(), True)
