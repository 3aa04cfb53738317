"""No import cycles anywhere in the package or the tools, type-checking imports included (issue 28).

import-linter's layer contracts (pyproject.toml) cover the layers; this covers what they leave out: two
modules of one layer, or of a subpackage without contracts, importing each other by any chain.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest


def test_no_module_reaches_itself_through_its_imports() -> None:
    graph = grimp.build_graph("swinir", "tools", exclude_type_checking_imports=False)
    cycles = sorted({
        tuple(sorted((module, imported)))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    })
    assert not cycles, f"import cycles (each pair reaches the other): {cycles}"


def test_the_check_sees_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself works: a two-module package whose modules import each other under TYPE_CHECKING."""
    package = tmp_path / "cyclic_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n")
    (package / "b.py").write_text("from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclic_pkg", exclude_type_checking_imports=False)
    assert graph.chain_exists(importer="cyclic_pkg.a", imported="cyclic_pkg.b")
    assert graph.chain_exists(importer="cyclic_pkg.b", imported="cyclic_pkg.a")
