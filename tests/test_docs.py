"""The docs name real things: every file path and every dotted ``gridmap``/``api`` name in the README and
docs/architecture.md exists (modules import, their attributes resolve), so a rename that forgets the docs
fails here instead of misleading the next reader."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "architecture.md"]
_PATH = re.compile(r"`((?:gridmap|api|scripts|tests|docs|data|notebooks|core|routing|sample|storage|services|"
                   r"analysis|viz|simulation)/[\w/.-]+\.(?:py|md|js|html|css|csv|ipynb|gpkg))`")
_NAME = re.compile(r"`((?:gridmap|api)(?:\.\w+)+)`")
_SHORT_ROOTS = ("core", "routing", "sample", "storage", "services", "analysis", "viz", "simulation")


def _resolve(path: str) -> Path:
    return ROOT / "gridmap" / path if path.startswith(_SHORT_ROOTS) else ROOT / path


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_named_in_the_docs_exists(doc):
    paths = set(_PATH.findall(doc.read_text(encoding="utf-8")))
    assert paths, f"{doc.name} names no file: the pattern no longer matches how it writes them"
    missing = sorted(p for p in paths if not _resolve(p).exists())
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


def _lookup(dotted: str) -> object:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_dotted_name_in_the_docs_resolves(doc):
    names = set(_NAME.findall(doc.read_text(encoding="utf-8")))
    assert names, f"{doc.name} names no module: the pattern no longer matches how it writes them"
    broken = []
    for name in sorted(names):
        try:
            _lookup(name)
        except (ImportError, AttributeError) as exc:
            broken.append(f"{name} ({exc})")
    assert not broken, f"{doc.name} names what does not exist: {broken}"


def test_the_checker_fails_on_a_missing_name():
    with pytest.raises(AttributeError):
        _lookup("gridmap.core.vocabulary.NO_SUCH_WORD")
    assert not _resolve("gridmap/no_such_module.py").exists()
