"""Generate the sample street and write every layer to a folder (GeoPackage + Parquet).

Usage::

    python scripts/generate_sample_street.py OUT_DIR [--seed N] [--n-residents N] ...

Writes ``OUT_DIR/<layer>.parquet`` for all eleven layers (GeoParquet for the spatial ones,
lossless: lists, dates and time zones kept) and ``OUT_DIR/sample_street.gpkg`` with the six
spatial layers for desktop GIS (list columns as comma-separated text there). Prints the row
count of each layer and the seconds spent generating and writing.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

try:
    import gridmap  # noqa: F401
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geopandas as gpd
import pandas as pd

from gridmap.sample.street import (
    DEFAULT_EVENTS_START,
    DEFAULT_SEED,
    generate_sample_street,
    grid_workloads,
)

REPO = Path(__file__).resolve().parents[1]


def _for_gpkg(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """GeoPackage has no list type (lists become comma-separated text) and wants dates typed."""
    out = frame.copy()
    for col in out.columns:
        if col == out.geometry.name or out[col].dtype != object or not len(out):
            continue
        first = out[col].dropna().iloc[0] if out[col].notna().any() else None
        if isinstance(first, list):
            out[col] = out[col].map(",".join)
        elif isinstance(first, date):
            out[col] = pd.to_datetime(out[col])
    return out


def _start(text: str) -> datetime:
    """ISO date or datetime; without an offset it is taken as Beijing time (Asia/Shanghai)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo("Asia/Shanghai"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--n-grids", type=int, default=149)
    parser.add_argument("--n-residents", type=int, default=260_000)
    parser.add_argument("--n-teams", type=int, default=150)
    parser.add_argument("--n-events", type=int, default=36_000)
    parser.add_argument("--events-start", type=_start, default=DEFAULT_EVENTS_START)
    parser.add_argument("--edges", type=Path,
                        default=REPO / "data/roads/hz_xihu_gongshu_osm_drive.gpkg")
    parser.add_argument("--districts", type=Path,
                        default=REPO / "data/boundaries/hangzhou_districts_tianditu.geojson")
    args = parser.parse_args(argv)
    try:
        edges = gpd.read_file(args.edges, layer="edges")
        districts = gpd.read_file(args.districts)
        started = time.perf_counter()
        street = generate_sample_street(
            edges, districts, seed=args.seed, n_grids=args.n_grids,
            n_residents=args.n_residents, n_teams=args.n_teams,
            events_start=args.events_start, n_events=args.n_events)
        generated = time.perf_counter() - started
        args.out_dir.mkdir(parents=True, exist_ok=True)
        gpkg = args.out_dir / "sample_street.gpkg"
        gpkg.unlink(missing_ok=True)
        for name, frame in street.layers().items():
            frame.to_parquet(args.out_dir / f"{name}.parquet", index=False)
            if isinstance(frame, gpd.GeoDataFrame):
                _for_gpkg(frame).to_file(gpkg, layer=name, driver="GPKG")
        written = time.perf_counter() - started - generated
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    counts = pd.Series(street.counts(), name="rows")
    print(counts.to_string())
    workload = grid_workloads(street)
    print(f"grid workload max/min: {workload.max() / workload.min():.2f}")
    print(f"generated in {generated:.1f} s, written to {args.out_dir} in {written:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
