"""The API reference: pdoc over every swiftlab module, into one folder of static HTML.

pdoc, not mkdocs + mkdocstrings: one package with no configuration, that reads the docstrings and signatures
of the imported modules as they are (so the reference cannot describe code that is not there), and writes
plain HTML with its search index beside it, needing no network to build or to read. Run it as `bash bin/docs`.
"""

from __future__ import annotations

import pkgutil
import sys
import warnings
from pathlib import Path


def module_specs() -> list[str]:
    """Every swiftlab module, named one by one: pdoc lists a package's submodules through its `__all__`,
    which for swiftlab, tasks/ and widgets/ holds their public names, not their modules."""
    import swiftlab

    return ["swiftlab"] + sorted(m.name for m in pkgutil.walk_packages(swiftlab.__path__, "swiftlab.")
                                 if not any(part.startswith("_") for part in m.name.split(".")))


def undocumented(names: list[str] | None = None) -> list[str]:
    """The public modules, classes, functions and methods of the reference that have no docstring of their
    own (pdoc would show them with an empty body). Private names (`_x`), inherited members and variables are
    not asked for; a method that overrides a documented one inherits its docstring, as pdoc shows it."""
    import pdoc.doc
    import pdoc.extract

    missing = []

    def visit(doc) -> None:
        for member in doc.members.values():
            if member.name.startswith("_") or isinstance(member, pdoc.doc.Variable):
                continue
            if member.taken_from != (doc.modulename, member.qualname):
                continue  # imported into this module, or inherited: documented where it is defined
            if not member.docstring.strip():
                missing.append(member.fullname)
            if isinstance(member, pdoc.doc.Class):
                visit(member)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in pdoc.extract.walk_specs(names or module_specs()):
            module = pdoc.doc.Module.from_name(name)
            if not module.docstring.strip():
                missing.append(name)
            visit(module)
    return missing


def build(out: Path) -> Path:
    """Write the reference to `out`; returns its index page."""
    import pdoc
    import pdoc.render

    pdoc.render.configure(docformat="markdown", show_source=True, search=True,
                          footer_text="swiftlab API reference (bin/docs)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pdoc.pdoc(*module_specs(), output_directory=out)
    return out / "index.html"


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "build/api").resolve()
    index = build(out)
    missing = undocumented()
    print(f"swiftlab: API reference in {index}" + (f"; {len(missing)} public names without a docstring:"
                                                     if missing else ""))
    for name in missing:
        print(f"  {name}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
