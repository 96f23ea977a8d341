"""gridmap: a geospatial grid-management (网格化管理) GIS backend on PostGIS.

>>> import gridmap as gm
>>> db = gm.connect()                 # the embedded PostGIS (started if needed) or GRIDMAP_DATABASE_URL  # doctest: +SKIP
>>> grids = db.layer("grids")         # a GeoDataFrame in EPSG:4326                                          # doctest: +SKIP
"""

from importlib.metadata import version as _version
from types import ModuleType

from gridmap.config import MEASURE_CRS, STORAGE_SRID, Settings, get_settings
from gridmap.core.crs import gcj02_to_wgs84, wgs84_to_gcj02
from gridmap.errors import (
    Conflict,
    DatabaseError,
    FeatureProblem,
    GridmapError,
    InvalidInput,
    LoadRejected,
    NotFound,
)
from gridmap.services.loading import LoadReport
from gridmap.services.registry import Registry, connect

#: the installed distribution's version: pyproject.toml declares it once, the API announces the same
__version__ = _version("gridmap")


def __getattr__(name: str) -> ModuleType:
    # `gm.analysis` is imported on first use: it pulls in esda, libpysal, h3 and PuLP (seconds to import).
    if name == "analysis":
        import importlib

        return importlib.import_module("gridmap.analysis")
    raise AttributeError(f"module 'gridmap' has no attribute {name!r}")


def __dir__() -> list[str]:
    # what `dir(gm)` and tab completion show: the module's own names plus the lazily imported `analysis`
    return sorted({*globals(), "analysis"})


__all__ = [
    "analysis",
    "MEASURE_CRS",
    "STORAGE_SRID",
    "Conflict",
    "DatabaseError",
    "FeatureProblem",
    "GridmapError",
    "InvalidInput",
    "LoadRejected",
    "LoadReport",
    "NotFound",
    "Registry",
    "Settings",
    "connect",
    "gcj02_to_wgs84",
    "get_settings",
    "wgs84_to_gcj02",
]
