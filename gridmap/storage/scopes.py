"""The scope filter in SQL: one fragment per kind of row, confining a read to one area of any level.

An operator's scope is one area code: a district (all its streets), a street, or a community (its grids
only). Every fragment below takes the SQL placeholder that holds that code (e.g. ``:scope_area`` or
``:street`` in a SQLAlchemy ``text()``) and resolves what lies under it from the *current* ``areas`` in the
same statement, so rows outside the scope never leave PostGIS:

* events by their street (for a district or a street) or their community (for a community) —
  :func:`events` (for a street exactly ``street_code = :s``, as before levels existed);
* teams by their home grid, buildings (and so residents) by their community, fire equipment by the current
  boundary of the scope's streets (or of the community) — :func:`teams`, :func:`buildings`, :func:`equipment`.

Area codes are unique across levels, so one placeholder serves every level.
"""

from __future__ import annotations

_CURRENT = "valid_to IS NULL"


def streets_of(p: str) -> str:
    """The current streets under area ``p``: the street itself, or a district's streets (none for a community)."""
    return f"SELECT code FROM areas WHERE level = 'street' AND {_CURRENT} AND (code = {p} OR parent_code = {p})"


def communities_of(p: str) -> str:
    """The current communities under area ``p`` (a community: itself)."""
    return (f"SELECT code FROM areas WHERE level = 'community' AND {_CURRENT} "
            f"AND (code = {p} OR parent_code IN ({streets_of(p)}))")


def grids_of(p: str) -> str:
    """The current grids under area ``p``."""
    return f"SELECT code FROM areas WHERE level = 'grid' AND {_CURRENT} AND parent_code IN ({communities_of(p)})"


def shapes_of(p: str) -> str:
    """The current polygons that make up area ``p``: its streets' (a district, a street) or the community's."""
    return (f"SELECT geom FROM areas WHERE {_CURRENT} AND ((level = 'street' AND (code = {p} OR parent_code = {p})) "
            f"OR (level = 'community' AND code = {p}))")


def events(alias: str, p: str) -> str:
    """Events of area ``p``: by street for a district or a street, by community for a community."""
    return f"({alias}street_code IN ({streets_of(p)}) OR {alias}community_code = {p})"


def teams(alias: str, p: str) -> str:
    """Teams whose home grid lies in area ``p`` (where they are now does not matter)."""
    return f"{alias}home_grid_code IN ({grids_of(p)})"


def buildings(alias: str, p: str) -> str:
    """Buildings (and what is in them: residents, households, businesses) of area ``p``'s communities."""
    return f"{alias}community_code IN ({communities_of(p)})"


def equipment(alias: str, p: str) -> str:
    """Points (fire equipment) inside the current boundary of area ``p``."""
    return f"EXISTS (SELECT 1 FROM ({shapes_of(p)}) s WHERE ST_Intersects(s.geom, {alias}geom))"


def unconfined_or(p: str, clause: str) -> str:
    """``clause``, or everything when the placeholder holds NULL (an unconfined reader)."""
    return f"(CAST({p} AS text) IS NULL OR {clause})"


