"""The docs cite names that exist: every dotted name in backticks in docs/architecture.md resolves."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("e2r", "trainer", "indexer", "queries")
DOTTED = re.compile(r"`((?:%s)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)" % "|".join(ROOTS))


def resolve(name: str) -> bool:
    """True when `name` is a module, or an attribute (path) of the longest importable module prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _cited(doc: Path) -> list[tuple[int, str]]:
    return [(i, m.group(1)) for i, line in enumerate(doc.read_text().splitlines(), 1) for m in DOTTED.finditer(line)]


def test_architecture_doc_cites_only_names_that_exist():
    cited = _cited(ROOT / "docs" / "architecture.md")
    assert len(cited) > 50, "the contract lists the modules' names"
    missing = [f"line {i}: {name}" for i, name in cited if not resolve(name)]
    assert not missing, "docs/architecture.md cites names that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("name,ok", [("e2r.ecg.read_ecg", True), ("e2r.ecg.no_such_function", False),
                                     ("e2r.no_such_module.x", False), ("trainer.loop.run", True)])
def test_resolver_fails_on_a_missing_name(name, ok):
    assert resolve(name) is ok
