"""What the SQL guarantees about a result and psycopg's types cannot know.

``Cursor.fetchone()`` is typed ``Row | None`` and ``Cursor.description`` ``list[Column] | None``. An
aggregate (``SELECT count(*)``, ``SELECT EXISTS``) or an ``INSERT ... RETURNING`` of one row always
returns exactly one row, and a ``SELECT`` always has columns: these say so once, checked, instead of
an unchecked ``fetchone()[0]`` at each call.
"""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg

R = TypeVar("R")


def one(cur: psycopg.Cursor[R]) -> R:
    """The row of a statement that always returns exactly one."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("the statement returned no row, where it always returns one")
    return row


def column_names(cur: psycopg.Cursor[Any]) -> list[str]:
    """The column names of a statement that returns rows."""
    if cur.description is None:
        raise RuntimeError("the statement returns no rows, so it has no column names")
    return [d.name for d in cur.description]
