"""Every notebook in notebooks/ runs top to bottom on the sample street (nbclient), so none of them rots.

Each notebook runs in a fresh kernel pointed at the test's sample-street database through
``GRIDMAP_DB_NAME``, with its working directory, IPython/matplotlib/Jupyter state and temporary files in
a temporary directory: a notebook writes nothing anywhere else. Each notebook asserts the figures its
prose quotes, so a cell that prints a wrong number fails here.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.analysis.analysis_helpers import STREET_DB

pytestmark = [pytest.mark.db, pytest.mark.slow]
NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_the_four_planner_notebooks():
    names = [p.stem for p in NOTEBOOKS]
    assert len(names) >= 4
    for topic in ("coverage", "hotspots", "safety", "idle_land"):
        assert any(topic in n for n in names), topic


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, street_engine, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any("assert " in src for src in code), "each notebook asserts at least one figure it prints"
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 3, "prose for the planner"
    assert any("plt.show()" in src for src in code), "each notebook draws"
    monkeypatch.setenv("GRIDMAP_DB_NAME", STREET_DB)
    for var, sub in (("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "mpl"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTER_DATA_DIR", "data"), ("TMPDIR", "tmp")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on the first failure
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.output_type == "stream" and o.get("name") == "stdout" for o in outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs), "a map or a plot was drawn"
    assert not [o for o in outputs if o.output_type == "error"]
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()}
    assert written <= {"ipython", "mpl", "runtime", "data", "tmp"}, "notebooks must not write files"
