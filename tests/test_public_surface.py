"""What ``import gridmap as gm`` offers a notebook: one version, every name in ``dir``, errors a Python user
can catch by their built-in kind, and options spelled out in the signatures."""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

import gridmap as gm
from api import errors as api_errors
from api.app import create_app
from gridmap.errors import Conflict, DatabaseError, GridmapError, InvalidInput, LoadRejected, NotFound
from gridmap.services import loading

ROOT = Path(__file__).resolve().parents[1]


def test_one_version_declared_once():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert gm.__version__ == importlib.metadata.version("gridmap") == declared
    app = create_app(gm.Settings())  # nothing connects before the lifespan starts
    assert app.version == declared and app.openapi()["info"]["version"] == declared


def test_dir_shows_analysis_without_importing_it():
    code = ("import sys, gridmap as gm; names = dir(gm); "
            "print('analysis' in names, 'gridmap.analysis' in sys.modules, 'connect' in names)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "True"]
    assert set(gm.__all__) <= set(dir(gm))


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (InvalidInput("bad", field="x", fix="send a good one"), ValueError),
        (LoadRejected("buildings", "3 of 5 features are bad"), ValueError),
        (NotFound("no grid G9", field="area"), LookupError),
        (Conflict("event 7 is closed", field="event_id"), RuntimeError),
        (DatabaseError("the database is down", fix="run `gridmap db up`"), ConnectionError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v.__name__,
)
def test_errors_are_the_builtins_a_python_user_catches(error, builtin):
    with pytest.raises(builtin) as caught:
        raise error
    assert isinstance(caught.value, GridmapError)
    # GridmapError comes first in the MRO: its message form, not the built-in's (KeyError would quote it)
    mro = type(error).__mro__
    assert mro.index(GridmapError) < mro.index(builtin)
    assert str(error) == error.__str__() and not str(error).startswith("'")


def test_not_found_is_not_a_key_error():
    """A KeyError's str() is the repr of its argument: the message would arrive in quotes."""
    assert not issubclass(NotFound, KeyError)
    assert str(NotFound("no grid G9", field="area", fix="list them with gm.connect().layer('grids')")) == \
        "area: no grid G9; list them with gm.connect().layer('grids')"


@pytest.mark.parametrize("error", [InvalidInput("bad x", field="x"), LoadRejected("buildings", "bad file"),
                                   NotFound("no such grid", field="area"), Conflict("event is closed"),
                                   DatabaseError("the database is down")], ids=lambda e: type(e).__name__)
def test_the_api_maps_domain_errors_before_any_builtin_handler(error):
    """FastAPI picks a handler along the exception's MRO: with handlers for the built-ins installed too (by a
    library, or later by us), the domain table still answers, with its status and its JSON shape."""
    app = FastAPI()

    async def builtin_handler(request, exc):
        return JSONResponse({"error": "builtin"}, status_code=418)

    for builtin in (ValueError, LookupError, RuntimeError, ConnectionError, OSError):
        app.add_exception_handler(builtin, builtin_handler)
    api_errors.install(app)

    @app.get("/boom")
    def boom():
        raise error

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    assert r.status_code == api_errors.status_of(error) != 418
    assert r.json() == error.to_dict()


def _options(fn) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(fn).parameters.items() if n not in ("self", "engine", "settings")}


@pytest.mark.parametrize(("method", "services"), [(gm.Registry.load, [loading.load_file]),
                                                  (gm.Registry.load_frame, [loading.load_frame, loading.prepare])])
def test_registry_load_spells_out_the_services_options(method, services):
    """No ``**opts``: each option of the service (``load_frame`` passes its ``**opts`` to ``prepare``) is a
    keyword of the registry's method, with the same default. Not offered: ``sha256`` (the registry has no
    file to hash for a frame) and ``defaults`` (the service fills it in per layer)."""
    mine = _options(method)
    theirs: dict[str, inspect.Parameter] = {}
    for fn in services:
        theirs |= {n: p for n, p in _options(fn).items()
                   if p.kind is not inspect.Parameter.VAR_KEYWORD and n not in ("sha256", "defaults")}
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in mine.values())
    assert sorted(mine) == sorted(theirs)
    assert {n: p.default for n, p in mine.items()} == {n: p.default for n, p in theirs.items()}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in mine.items() if n not in ("layer", "path", "gdf"))


def _runtime_closure() -> set[str]:
    """The distributions ``pip install gridmap`` brings: the runtime requirements (no extra of gridmap's own)
    and, recursively, theirs, with the extras each names (``uvicorn[standard]``)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [("gridmap", frozenset[str]())]
    while todo:
        dist, extras = todo.pop()
        for spec in importlib.metadata.requires(dist) or []:
            req = Requirement(spec)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            name = canonicalize_name(req.name)
            if name not in seen:
                seen.add(name)
                todo.append((req.name, frozenset(req.extras)))
    return seen


def _imported_modules(*folders: str) -> set[str]:
    """Top-level names of every module imported anywhere in ``folders`` (lazy imports in functions too)."""
    import ast

    names: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"gridmap", "api", "__future__"}


def test_runtime_dependencies_cover_every_import_of_the_package():
    """What gridmap/ and api/ import is installed by the runtime dependencies alone (not by an extra)."""
    from packaging.utils import canonicalize_name

    providers = importlib.metadata.packages_distributions()
    runtime = _runtime_closure()
    missing = {m: providers.get(m) for m in _imported_modules("gridmap", "api")
               if not {canonicalize_name(d) for d in providers.get(m, [])} & runtime}
    assert missing == {}


def test_test_and_notebook_packages_are_not_runtime_dependencies():
    runtime = _runtime_closure()
    assert not {"pytest", "schemathesis", "playwright", "nbclient", "nbformat", "ipykernel", "jupyterlab",
                "matplotlib", "hypothesis", "ruff", "mypy"} & runtime
