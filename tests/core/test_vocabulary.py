"""The vocabulary module against the migrated database: the CHECK constraints the migrations created allow
exactly the words :mod:`gridmap.core.vocabulary` spells, and every enumerated CHECK is in the vocabulary.

The shipped migrations spell their sets out (they are never edited), so this is what keeps a new status from
reaching the code without a migration, or a migration without the code.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from gridmap.core import vocabulary
from gridmap.storage import models  # (it imports every model module: all tables are in its metadata)

pytestmark = pytest.mark.db

_ANY = re.compile(r"\(?\(?(\w+) = ANY \(ARRAY\[(.*?)\]\)\)?")


def _enumerated_checks(engine) -> dict[tuple[str, str], tuple[str, ...]]:
    """(table, column) -> allowed words, from every ``column = ANY (ARRAY[...])`` CHECK in the schema."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'c' AND connamespace = 'public'::regnamespace")).all()
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for table, definition in rows:
        for column, words in _ANY.findall(definition):
            out[table, column] = tuple(re.findall(r"'([^']*)'::text", words))
    return out


def test_every_enumerated_check_in_the_database_is_the_vocabulary(engine):
    checks = _enumerated_checks(engine)
    assert checks, "no enumerated CHECK constraint found: the parser no longer matches PostgreSQL's form"
    assert set(checks) == set(vocabulary.CHECKED), (
        f"in the database only: {sorted(set(checks) - set(vocabulary.CHECKED))}; "
        f"in the vocabulary only: {sorted(set(vocabulary.CHECKED) - set(checks))}")
    for key, words in checks.items():
        assert words == vocabulary.CHECKED[key], key  # same words, same order (the kernels number statuses)


def test_the_models_build_their_checks_from_the_vocabulary():
    """The ORM's CHECK clauses (what autogenerate and the tests' schema see) name the vocabulary's words."""
    for (table, column), words in vocabulary.CHECKED.items():
        clauses = [str(c.sqltext) for c in models.Base.metadata.tables[table].constraints
                   if getattr(c, "sqltext", None) is not None and re.search(rf"\b{column} IN \(", str(c.sqltext))]
        assert len(clauses) == 1, (table, column, clauses)
        assert tuple(re.findall(r"'([^']*)'", clauses[0].split(f"{column} IN (", 1)[1].split(")")[0])) == words


def test_a_word_the_database_refuses_is_not_in_the_vocabulary(engine):
    """A status outside the vocabulary is refused by the database itself (not only by the services)."""
    assert "pending" not in vocabulary.EVENT_STATUSES
    with engine.connect() as conn, pytest.raises(Exception, match="ck_events_status"):
        conn.execute(text("INSERT INTO events (code, category, channel, severity, status, reported_at, geom) "
                          "VALUES ('VOCAB-1', 'noise', 'patrol', 1, 'pending', now(), "
                          "ST_SetSRID(ST_MakePoint(120.1, 30.3), 4326))"))


def test_open_statuses_and_kernel_order():
    assert set(vocabulary.OPEN_EVENT_STATUSES) < set(vocabulary.EVENT_STATUSES)
    assert set(vocabulary.ACTIVE_ASSIGNMENT_STATUSES) < set(vocabulary.ASSIGNMENT_STATUSES)
    assert set(vocabulary.ANSWERABLE_CHANNELS) <= set(vocabulary.CHANNELS)
    assert set(vocabulary.RESOLVED_OUTCOMES) <= set(vocabulary.OUTCOMES)
    assert set(vocabulary.CHANNEL_NAMES_ZH) == set(vocabulary.CHANNELS)
    assert vocabulary.TEAM_STATUSES[0] == "available"  # the kernels treat status 0 as eligible


def test_the_words_storage_sql_spells_out_are_the_vocabulary():
    """SQL that still spells a word list out (``status IN ('a', 'b')``, ``= 'resolved'``) uses the vocabulary's
    words only: a renamed or removed status cannot linger in a query."""
    from pathlib import Path

    from gridmap.core.levels import OPERATOR_LEVELS, UNIT_KINDS  # units.kind and users' levels: no CHECK

    words = {w for values in vocabulary.CHECKED.values() for w in values} | set(UNIT_KINDS) | set(OPERATOR_LEVELS)
    storage = Path(vocabulary.__file__).resolve().parents[1] / "storage"
    lists = 0
    for path in sorted(storage.glob("*.py")):
        text_ = path.read_text(encoding="utf-8")
        for column, listed in re.findall(r"\b(status|channel|kind|role|outcome|left_how|level|source)\s+IN\s+"
                                         r"\(((?:'\w+'(?:,\s*)?)+)\)", text_):
            lists += 1
            unknown = set(re.findall(r"'(\w+)'", listed)) - words
            assert not unknown, f"{path.name}: {column} IN ({listed}) names {unknown}, not in the vocabulary"
        for column, word in re.findall(r"\b(status|left_how|outcome)\s*=\s*'(\w+)'", text_):
            assert word in words, f"{path.name}: {column} = '{word}' is not in the vocabulary"
    assert lists >= 1  # the scan sees the SQL (a pattern that matches nothing would pass vacuously)
