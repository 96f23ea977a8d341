"""Bulk I/O: typed column coercion, binary COPY into PostGIS, upsert on a natural key, reads to GeoDataFrames.

Loads go through ``COPY ... (FORMAT BINARY)`` (psycopg 3, rows written by its C row encoder), never
row-by-row INSERTs or ORM objects. Geometries travel as EWKB bytes, which is what PostGIS's binary
input (``geometry_recv``) takes. All writes happen on the caller's connection, inside the caller's
transaction: a failure anywhere rolls the whole load back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql

from gridmap.core.vocabulary import TIME_ZONE
from gridmap.errors import FeatureProblem
from gridmap.storage._rows import one
from gridmap.storage.layers import LayerSpec, pg_type

if TYPE_CHECKING:
    from pandas.api.typing import NaTType

Progress = Callable[[int, int], None]  # (rows done, rows total)
_TRUE = {"true", "t", "yes", "y", "1", "是"}
_FALSE = {"false", "f", "no", "n", "0", "否", ""}


@dataclass
class UpsertResult:
    inserted: int
    updated: int
    unchanged: int


# -- coercion -------------------------------------------------------------------------------------
def _null_mask(s: pd.Series) -> np.ndarray:
    return s.isna().to_numpy()


def _one_timestamp(v: Any) -> pd.Timestamp | NaTType:
    try:
        t = pd.Timestamp(v)
    except (ValueError, TypeError):
        return pd.NaT
    if pd.isna(t):  # pd.Timestamp("NaT") is NaT
        return pd.NaT
    if t.tzinfo is None:
        return t.tz_localize(TIME_ZONE, ambiguous="NaT", nonexistent="NaT")
    return t.tz_convert(TIME_ZONE)


def _to_timestamps(s: pd.Series) -> pd.Series:
    """Parse dates/times; text may mix ISO 8601 forms (date only, with or without an offset, "Z")."""
    if s.dtype.kind in "mM" or isinstance(s.dtype, pd.DatetimeTZDtype):
        return pd.to_datetime(s, errors="coerce")
    try:  # text (object or pandas' string dtype): every value may have its own form
        return pd.to_datetime(s.astype(object), errors="coerce", format="mixed")
    except (ValueError, TypeError):  # offsets that differ, or naive and aware values together
        parsed = [_one_timestamp(v) for v in s.tolist()]
        return pd.Series(parsed, index=s.index, dtype=f"datetime64[ns, {TIME_ZONE}]")


def coerce_column(s: pd.Series, pgtype: str, column: str, keys: Sequence | None) -> tuple[list, list[FeatureProblem]]:
    """Convert a pandas column to Python values of a PostgreSQL type; name each value that does not fit."""
    problems: list[FeatureProblem] = []
    null = _null_mask(s)

    def bad(mask: np.ndarray, what: str) -> None:
        for i in np.flatnonzero(mask).tolist():
            problems.append(
                FeatureProblem(int(i), None if keys is None else str(keys[i]), "rejected",
                               f"column {column}: {s.iloc[i]!r} {what}")
            )

    if pgtype in ("int2", "int4", "int8", "float8"):
        return _numbers(s, pgtype, null, bad), problems
    if pgtype == "bool":
        if s.dtype == bool:
            return s.tolist(), problems
        low = s.astype("string").str.strip().str.lower()
        t = low.isin(_TRUE).to_numpy(dtype=bool, na_value=False)
        f = low.isin(_FALSE).to_numpy(dtype=bool, na_value=False)
        bad(~null & ~t & ~f, "is not true/false")
        return [None if n else bool(v) for n, v in zip(null, t, strict=True)], problems
    if pgtype in ("timestamptz", "date"):
        ts = _to_timestamps(s)
        bad(~null & ts.isna().to_numpy(), "is not a date/time (use ISO 8601, e.g. 2026-11-22T08:30:00+08:00)")
        if pgtype == "date":
            return [None if v is pd.NaT else v.date() for v in ts.tolist()], problems
        if getattr(ts.dt, "tz", None) is None:
            ts = ts.dt.tz_localize(TIME_ZONE, ambiguous="NaT", nonexistent="NaT")
        return [None if v is pd.NaT else v.to_pydatetime() for v in ts.tolist()], problems
    if pgtype == "text[]":
        return [_text_list(v, n) for v, n in zip(s.tolist(), null, strict=True)], problems
    if pgtype == "text":
        if s.dtype.kind == "f":  # 12.0 -> "12" (codes read as floats by a CSV reader)
            arr = s.to_numpy()
            whole = ~null & (arr == np.round(arr))
            return [None if n else (str(int(v)) if w else str(v)) for v, n, w in zip(arr, null, whole, strict=True)], problems
        return [None if n else str(v) for v, n in zip(s.tolist(), null, strict=True)], problems
    return [None if n else v for v, n in zip(s.tolist(), null, strict=True)], problems


def _numbers(s: pd.Series, pgtype: str, null: np.ndarray, bad: Callable[[np.ndarray, str], None]) -> list:
    """A column as numbers of ``pgtype`` (int2/int4/int8/float8); ``bad`` names the values that are not."""
    num = pd.to_numeric(s, errors="coerce")
    bad(~null & num.isna().to_numpy(), "is not a number")
    if pgtype == "float8":
        return [None if v != v else v for v in num.astype(float).tolist()]
    arr = num.to_numpy(dtype=float, na_value=np.nan)
    frac = ~np.isnan(arr) & (arr != np.round(arr))
    bad(frac, "is not a whole number")
    lim = {"int2": 2**15, "int4": 2**31, "int8": 2**63}[pgtype]
    bad(~np.isnan(arr) & (np.abs(arr) >= lim), f"is out of range for {pgtype}")
    if s.dtype.kind in "iu" and not null.any():
        return s.tolist()
    return [None if np.isnan(v) else int(v) for v in arr.tolist()]


def _text_list(v: Any, null: bool) -> list[str]:
    """A text[] value: a list as it is, or text split on ``;`` or ``,`` (an empty value: no items)."""
    if isinstance(v, list | tuple | np.ndarray):
        return [str(x) for x in v]
    if null:
        return []
    return [p.strip() for p in str(v).replace(",", ";").split(";") if p.strip()]


def ewkb(geoms: np.ndarray, srid: int = 4326) -> list[bytes | None]:
    """Geometries as EWKB bytes with their SRID, for binary COPY into a geometry column."""
    return shapely.to_wkb(shapely.set_srid(geoms, srid), include_srid=True, flavor="extended").tolist()


# -- COPY -----------------------------------------------------------------------------------------
def copy_columns(
    conn: psycopg.Connection, table: str, names: Sequence[str], types: Sequence[str], columns: Sequence[list],
    *, progress: Progress | None = None, chunk: int = 50_000,
) -> int:
    """Binary-COPY column lists (all the same length) into ``table``. Returns the number of rows."""
    n = len(columns[0]) if columns else 0
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(*table.split(".")), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.set_types(list(types))
        rows = zip(*columns, strict=True)
        done = 0
        while done < n:
            stop = min(done + chunk, n)
            for _ in range(stop - done):
                copy.write_row(next(rows))
            done = stop
            if progress:
                progress(done, n)
    return n


#: From this many rows on, a load into an EMPTY table drops the secondary indexes and unique/exclusion
#: constraints, COPYs, and builds them again (PostgreSQL's own advice for populating a database):
#: one sorted index build is several times cheaper than a million single inserts into a GiST tree.
BULK_REBUILD_ROWS = 50_000


def _copy_with_index_rebuild(conn: psycopg.Connection, table: str, names: Sequence[str], types: Sequence[str],
                             columns: Sequence[list], progress: Progress | None) -> None:
    """COPY into an empty table with its secondary indexes dropped and rebuilt, in the caller's transaction.

    The primary key stays (other tables' foreign keys need it). Unique and exclusion constraints are
    re-added afterwards, so a duplicate in the input still fails the load (and the caller falls back).
    The table is locked (ACCESS EXCLUSIVE) until commit: readers wait for the load, as for TRUNCATE.
    """
    ident = sql.Identifier(table)
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(ident))
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('u', 'x')", (table,)
    ).fetchall()
    indexes = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)", (table,)
    ).fetchall()
    for name, _ in constraints:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(ident, sql.Identifier(name)))
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    copy_columns(conn, table, names, types, columns, progress=progress)
    for _, ddl in indexes:
        conn.execute(ddl)
    for name, ddl in constraints:
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(ident, sql.Identifier(name)) + sql.SQL(ddl))


def _is_empty(conn: psycopg.Connection, table: str) -> bool:
    return one(conn.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))))[0]


def upsert_columns(
    conn: psycopg.Connection, spec: LayerSpec, names: Sequence[str], columns: Sequence[list],
    *, progress: Progress | None = None,
) -> UpsertResult:
    """Insert-or-update rows keyed on ``spec.key``, all or nothing.

    First try a plain COPY into the table under a savepoint (the common first load: one pass, no
    staging; into an empty table with the indexes rebuilt after, see ``BULK_REBUILD_ROWS``). If a key already exists (a unique or exclusion violation), roll back to the savepoint and
    go through a temporary staging table and ``INSERT ... ON CONFLICT DO UPDATE``, updating only rows
    that really changed.
    """
    table = spec.table.name
    types = [pg_type(spec.table.columns[c]) for c in names]
    n = len(columns[0]) if columns else 0
    if n == 0:
        return UpsertResult(0, 0, 0)
    try:
        with conn.transaction():
            if n >= BULK_REBUILD_ROWS and _is_empty(conn, table):
                _copy_with_index_rebuild(conn, table, names, types, columns, progress)
            else:
                copy_columns(conn, table, names, types, columns, progress=progress)
        return UpsertResult(n, 0, 0)
    except (psycopg.errors.UniqueViolation, psycopg.errors.ExclusionViolation):
        # A key already exists. (For versioned areas the exclusion constraint on (code, validity) may
        # fire before the unique key does; ON CONFLICT below re-raises it if it is a real overlap.)
        pass
    stage = "_gm_stage"
    cols = sql.SQL(", ").join(map(sql.Identifier, names))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(stage)))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(stage), cols, sql.Identifier(table)
        )
    )
    copy_columns(conn, stage, names, types, columns, progress=progress)
    key = sql.SQL(", ").join(map(sql.Identifier, spec.key))
    rest = [c for c in names if c not in spec.key]
    sets = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in rest)
    old = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in rest)
    new = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in rest)
    query = sql.SQL(
        "WITH up AS (INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM {stage} "
        "ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE ROW({old}) IS DISTINCT FROM ROW({new}) "
        "RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
    ).format(table=sql.Identifier(table), cols=cols, stage=sql.Identifier(stage), key=key, sets=sets, old=old, new=new)
    inserted, updated = one(conn.execute(query))
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(stage)))
    return UpsertResult(inserted, updated, n - inserted - updated)


def reset_identity(conn: psycopg.Connection, table: str, column: str = "id") -> None:
    """After COPY with explicit ids: move the identity sequence past the largest id."""
    conn.execute(
        sql.SQL("SELECT setval(pg_get_serial_sequence({t}, {c}), GREATEST((SELECT max({ci}) FROM {ti}), 1))").format(
            t=sql.Literal(table), c=sql.Literal(column), ci=sql.Identifier(column), ti=sql.Identifier(table)
        )
    )

