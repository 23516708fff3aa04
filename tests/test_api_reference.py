"""The API reference (`bash bin/docs`, pdoc over every module) builds offline, every public name in it has a
docstring, and every link inside it leads to a page and an anchor that exist."""

import importlib.util
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("apidocs", ROOT / "bin" / "apidocs.py")
apidocs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(apidocs)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links, self.loads = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("script", "img", "iframe") and attrs.get("src"):
            self.loads.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.loads.append(attrs["href"])


def pages(folder: Path) -> dict[Path, _Page]:
    out = {}
    for path in folder.rglob("*.html"):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        out[path.resolve()] = page
    return out


def broken_links(folder: Path) -> list[str]:
    """Links between the reference's pages whose page or anchor does not exist (links out are not followed)."""
    found = pages(folder)
    broken = []
    for path, page in found.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target not in found or (parts.fragment and unquote(parts.fragment) not in found[target].ids):
                broken.append(f"{path.relative_to(folder.resolve())}: {link}")
    return sorted(broken)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    done = subprocess.run(["bash", str(ROOT / "bin" / "docs"), str(out)], capture_output=True, text=True,
                          timeout=900)
    assert (out / "index.html").exists(), done.stdout + done.stderr
    return out, done


def test_every_public_name_has_a_docstring(reference):
    """bin/docs lists the public names without a docstring (and exits 1 while there are any)."""
    out, done = reference
    assert done.stdout.startswith(f"swiftlab: API reference in {out.resolve() / 'index.html'}"), done.stderr[-2000:]
    missing = [line.strip() for line in done.stdout.splitlines()[1:]]
    assert missing == [] and done.returncode == 0, f"public names without a docstring: {missing}"


def test_the_reference_shows_the_public_api_and_every_module(reference):
    out, _ = reference
    top = (out / "swiftlab.html").read_text()
    for name in ("decode", "generate", "hf_generate", "SkipSet", "SwiftParams", "load_model", "DecodeSession"):
        assert f'id="{name}"' in top, name
    for module in apidocs.module_specs():
        page = out.joinpath(*module.split(".")).with_suffix(".html")
        assert page.exists(), module
    decoding = (out / "swiftlab" / "engine" / "decoding.html").read_text()
    assert 'id="DecodeSession.step"' in decoding and 'id="decode"' in decoding


def test_links_inside_the_reference_resolve(reference):
    out, _ = reference
    assert sum(len(page.links) for page in pages(out).values()) > 500  # the pages do link to each other
    assert broken_links(out) == [], "links between the reference's pages that lead nowhere"


def test_the_reference_loads_nothing_from_the_network(reference):
    out, _ = reference
    remote = [f"{path.name}: {src}" for path, page in pages(out).items() for src in page.loads
              if re.match(r"(https?:)?//", src)]
    assert remote == []


def test_the_docstring_check_can_fail(tmp_path, monkeypatch):
    package = tmp_path / "halfdone"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "part.py").write_text(
        "from os.path import join  # imported: documented where it lives\n"
        "def bare(x):\n    return x\n"
        "def _private():\n    pass\n"
        "class Thing:\n    '''A thing.'''\n"
        "    def done(self):\n        '''Done.'''\n"
        "    def todo(self):\n        pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert apidocs.undocumented(["halfdone"]) == ["halfdone.part", "halfdone.part.bare", "halfdone.part.Thing.todo"]


def test_the_link_check_can_fail(tmp_path):
    (tmp_path / "a.html").write_text('<p id="here"><a href="b.html#there">b</a> <a href="#here">me</a> '
                                     '<a href="c.html">c</a> <a href="https://example.org/x">out</a></p>')
    (tmp_path / "b.html").write_text('<p id="elsewhere"><a href="a.html#here">a</a></p>')
    assert broken_links(tmp_path) == ["a.html: b.html#there", "a.html: c.html"]
