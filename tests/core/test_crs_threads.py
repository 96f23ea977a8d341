"""The shared transformers of gridmap.core.crs give pyproj's numbers in every thread, and a thread's first
use no longer rebuilds the PROJ operation from the EPSG database."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from pyproj import Transformer

from gridmap.config import MEASURE_CRS
from gridmap.core.crs import transformer


@pytest.mark.parametrize("src, dst", [("EPSG:4326", MEASURE_CRS), (MEASURE_CRS, "EPSG:4326"),
                                      ("EPSG:4326", "EPSG:3857"), ("EPSG:4267", "EPSG:4326")])
def test_transformer_matches_pyproj_in_every_thread(src, dst):
    rng = np.random.default_rng(7)
    if src == MEASURE_CRS:
        x, y = rng.uniform(380_000, 620_000, 5000), rng.uniform(3_100_000, 3_500_000, 5000)
    elif src == "EPSG:4267":  # NAD27: PROJ chooses among several operations per point (the fallback path)
        x, y = rng.uniform(-100, -90, 5000), rng.uniform(35, 45, 5000)
    else:
        x, y = rng.uniform(118, 122, 5000), rng.uniform(28, 32, 5000)
    want = Transformer.from_crs(src, dst, always_xy=True).transform(x, y)
    shared = transformer(src, dst)
    got: dict[str, tuple] = {}

    def run(name: str) -> None:
        got[name] = shared.transform(x, y)

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    run("main")
    assert transformer(src, dst) is shared
    for name, (gx, gy) in got.items():
        np.testing.assert_array_equal(gx, want[0], err_msg=name)
        np.testing.assert_array_equal(gy, want[1], err_msg=name)


def test_a_single_operation_is_kept_as_its_pipeline():
    t = transformer("EPSG:4326", MEASURE_CRS)
    assert t.definition.startswith("proj=pipeline") and "tmerc" in t.definition and "lon_0=120" in t.definition
