"""The run log: every report, offer, answer, decision, drive and position of a run, one JSON object a line.

Only simulated facts go in (simulation time, ids the API gave, places rounded to 1e-7 degrees, seconds to the
millisecond), never wall-clock timings, so two runs with the same seed write the same bytes and the same digest
(:attr:`RunLog.digest`). A path ending in ``.gz`` is written gzip-compressed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import IO, Any


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 7)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        return _clean(v.item())
    return v


class RunLog:
    """Append-only; ``keep=True`` also keeps the records in memory (tests)."""

    def __init__(self, path: str | Path | None = None, *, keep: bool = False, fixes: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self._f: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # open for the run's length, closed by close(): a long-lived writer, not a block
            self._f = gzip.open(self.path, "wt", encoding="utf-8") if self.path.suffix == ".gz" else \
                open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        self.keep = keep
        self.fixes = fixes  # whether every position goes in (a day: ~15 MB before gzip)
        self.records: list[dict] = []
        self._sha = hashlib.sha256()
        self.count = 0

    def write(self, t: float, kind: str, **fields: Any) -> None:
        rec = {"t": round(t, 3), "kind": kind, **_clean(fields)}
        line = json.dumps(rec, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        self._sha.update(line.encode())
        self._sha.update(b"\n")
        self.count += 1
        if self._f is not None:
            self._f.write(line + "\n")
        if self.keep:
            self.records.append(json.loads(line))

    @property
    def digest(self) -> str:
        return self._sha.hexdigest()

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_log(path: str | Path) -> list[dict]:
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
