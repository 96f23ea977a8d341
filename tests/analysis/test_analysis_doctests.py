"""The runnable Examples of gridmap.analysis's docstrings run (and give what they say)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["coverage", "siting", "response", "hotspots", "safety", "workload", "idle_land", "load"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"gridmap.analysis.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in gridmap.analysis.{name}"
    if name != "load":  # load's examples need a database and are marked +SKIP
        assert result.attempted >= 2, f"gridmap.analysis.{name} has no runnable example"
