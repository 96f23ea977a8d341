"""Every public function and class of ``gm.analysis`` documents itself in numpy style: Parameters (every
argument of its signature, nothing else), Returns (functions) and Examples (with at least one ``>>>`` line).

ruff's pydocstyle rules (``D``, numpy convention, pyproject.toml) check the layout of these docstrings but
not that the sections are there: this test does. Whether the examples are true is
``test_analysis_doctests.py``'s job (it runs them).
"""

from __future__ import annotations

import inspect
import re

import pytest

import gridmap.analysis as ga

#: a numpy section header: a title line, then a line of dashes (inspect.getdoc has removed the indentation)
_HEADER = re.compile(r"^([A-Z][A-Za-z ]+)\n-{3,}[ \t]*$", re.MULTILINE)
#: a parameter's line in a Parameters section: ``name``, ``a, b``, ``*args``, optionally ``: type``
_PARAM = re.compile(r"^(\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*(?::.*)?$")

PUBLIC = [n for n in ga.__all__ if inspect.isfunction(getattr(ga, n)) or inspect.isclass(getattr(ga, n))]


def sections(doc: str) -> dict[str, str]:
    """The numpy sections of a docstring: title -> body (the text up to the next header)."""
    heads = list(_HEADER.finditer(doc))
    return {m.group(1).strip(): doc[m.end():heads[i + 1].start() if i + 1 < len(heads) else len(doc)]
            for i, m in enumerate(heads)}


def documented_parameters(body: str) -> set[str]:
    """The names a Parameters section documents: its unindented lines (descriptions are indented)."""
    names: set[str] = set()
    for line in body.splitlines():
        if not line.strip() or line[0].isspace():
            continue
        m = _PARAM.match(line.strip())
        if m:
            names.update(n.strip().lstrip("*") for n in m.group(1).split(","))
    return names


def problems(doc: str | None, parameters: list[str], *, function: bool) -> list[str]:
    """What a public name's docstring lacks; empty when it is complete."""
    if not doc:
        return ["no docstring"]
    found = sections(doc)
    required = ["Parameters", "Returns", "Examples"] if function else ["Parameters", "Examples"]
    out = [f"no {s} section" for s in required if s not in found]
    if "Parameters" in found:
        named = documented_parameters(found["Parameters"])
        missing = [p for p in parameters if p not in named]
        unknown = sorted(named - set(parameters))
        if missing:
            out.append(f"Parameters does not document {', '.join(missing)}")
        if unknown:
            out.append(f"Parameters documents {', '.join(unknown)}, which the signature does not have")
    if "Returns" in found and not found["Returns"].strip():
        out.append("Returns is empty")
    if "Examples" in found and ">>> " not in found["Examples"]:
        out.append("Examples has no example (>>> line)")
    return out


def _signature_parameters(obj: object) -> list[str]:
    sig = inspect.signature(obj)  # a class: its constructor's (a dataclass: its fields)
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in sig.parameters.values() if p.kind not in skip and p.name != "self"]


def test_the_public_surface_is_checked():
    """The check runs on the whole public surface (it would pass vacuously on an empty list)."""
    assert len(PUBLIC) >= 36
    assert {"building_coverage", "maximal_covering", "hotspots", "safety_index", "SitingResult",
            "Dimension", "load_road_graph"} <= set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_has_numpy_sections(name):
    obj = getattr(ga, name)
    found = problems(inspect.getdoc(obj), _signature_parameters(obj), function=inspect.isfunction(obj))
    assert not found, f"gridmap.analysis.{name}: {'; '.join(found)}"


def _sample(graph, places, *, horizon_s=60.0):
    """Compute a sample, to test the check itself.

    Parameters
    ----------
    graph : RoadGraph
        The graph.
    places : geopandas.GeoDataFrame
        The places.
    horizon_s : float, default 60
        The horizon.

    Returns
    -------
    pandas.Series
        The times.

    Examples
    --------
    >>> 1 + 1
    2
    """


SAMPLE_DOC = inspect.getdoc(_sample)
SAMPLE_PARAMS = _signature_parameters(_sample)


def _without(doc: str, title: str) -> str:
    """``doc`` with one section (header and body) cut out."""
    m = next(m for m in _HEADER.finditer(doc) if m.group(1) == title)
    rest = _HEADER.search(doc, m.end())
    return doc[:m.start()] + (doc[rest.start():] if rest else "")


def test_the_check_passes_a_complete_docstring():
    assert problems(SAMPLE_DOC, SAMPLE_PARAMS, function=True) == []
    assert documented_parameters(sections(SAMPLE_DOC)["Parameters"]) == {"graph", "places", "horizon_s"}


@pytest.mark.parametrize("title", ["Parameters", "Returns", "Examples"])
def test_the_check_fails_when_a_section_is_removed(title):
    assert problems(_without(SAMPLE_DOC, title), SAMPLE_PARAMS, function=True)[0] == f"no {title} section"


def test_a_class_needs_no_returns():
    assert problems(_without(SAMPLE_DOC, "Returns"), SAMPLE_PARAMS, function=False) == []


def test_the_check_names_an_undocumented_or_stale_parameter():
    assert problems(SAMPLE_DOC, [*SAMPLE_PARAMS, "speed"], function=True) == ["Parameters does not document speed"]
    assert problems(SAMPLE_DOC, ["graph", "places"], function=True) == [
        "Parameters documents horizon_s, which the signature does not have"]


def test_the_check_wants_an_example_and_a_return_value():
    no_example = SAMPLE_DOC.replace(">>> 1 + 1\n2", "Add one and one.")
    assert problems(no_example, SAMPLE_PARAMS, function=True) == ["Examples has no example (>>> line)"]
    empty_returns = SAMPLE_DOC.replace("pandas.Series\n    The times.\n", "")
    assert problems(empty_returns, SAMPLE_PARAMS, function=True) == ["Returns is empty"]
    assert problems(None, SAMPLE_PARAMS, function=True) == ["no docstring"]
