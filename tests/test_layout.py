"""The test tree must not shadow the application's packages: ``tests/api`` (the HTTP tests) is not ``api``.

Without ``tests/__init__.py`` pytest put ``tests/`` itself on ``sys.path``, ``import api`` found the test
package first, and the app's modules still loaded only because the editable install's finder filled them in
(so a second checkout could mix its own files with another's).
"""

from __future__ import annotations

from pathlib import Path

import api
import gridmap

ROOT = Path(__file__).resolve().parents[1]


def test_api_and_gridmap_are_the_applications_packages():
    assert Path(api.__file__).resolve().parent == ROOT / "api"
    assert list(map(str, api.__path__)) == [str(ROOT / "api")]
    assert Path(gridmap.__file__).resolve().parent == ROOT / "gridmap"
