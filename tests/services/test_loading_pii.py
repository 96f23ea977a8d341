"""Personal data in the registry: never loaded or exported, masked and logged when read."""

from __future__ import annotations

import geopandas as gpd
import pytest
from sqlalchemy import text

from gridmap.errors import InvalidInput, NotFound
from gridmap.storage.layers import LAYERS
from tests.services._loading import box, equipment, read, scalar, write

# -- personal data ------------------------------------------------------------------------------
PII = {"name": "欧阳震华", "id_card": "330106198001011234", "phone": "13812345678"}


@pytest.fixture
def residents(db):
    """A building with one household of three residents; two of them have personal data, one a phone."""
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO buildings (code, name, floors, use, geom) VALUES "
            "('B1', '1号楼', 6, 'residential', ST_Multi(ST_MakeEnvelope(120.1, 30.28, 120.1004, 30.2803, 4326)))"))
        conn.execute(text("INSERT INTO households (code, building_id, unit, floor, room, size) "
                          "VALUES ('HH1', 1, 1, 2, '201', 3)"))
        conn.execute(text("INSERT INTO residents (household_id, building_id, sex, birth_year, flags) VALUES "
                          "(1, 1, 'M', 1980, '{elderly_alone}'), (1, 1, 'F', 1982, '{}'), (1, 1, 'F', 2012, '{}')"))
        conn.execute(text("INSERT INTO resident_pii (resident_id, name, id_card, phone) VALUES "
                          "(1, :name, :id_card, :phone), (2, '李四', NULL, NULL)"), PII)
    return db


def test_residents_have_no_personal_data_by_default(residents):
    df = residents.residents()
    assert len(df) == 3
    assert not {"name", "id_card", "phone"} & set(df.columns)
    assert df["building_code"].tolist() == ["B1"] * 3 and df["room"].tolist() == ["201"] * 3
    assert PII["name"] not in df.to_string() and PII["id_card"] not in df.to_string()
    assert scalar(residents.engine, "SELECT count(*) FROM pii_access_log") == 0


def test_personal_data_is_masked_and_logged(residents):
    df = residents.residents(personal=True, actor="王网格员", purpose="household visit")
    rows = df.set_index("id")[["name", "id_card", "phone"]]
    assert rows.loc[1].tolist() == ["欧***", "330106********1234", "138****5678"]
    assert rows.loc[2, "name"] == "李*" and rows.loc[2, ["id_card", "phone"]].isna().all()
    assert rows.loc[3].isna().all()  # a resident without personal data
    with residents.engine.connect() as conn:
        log = conn.execute(text("SELECT actor, purpose, table_name, row_count, detail FROM pii_access_log")).all()
    assert len(log) == 1
    actor, purpose, table, n, detail = log[0]
    assert (actor, purpose, table, n) == ("王网格员", "household visit", "resident_pii", 3)
    assert detail["unmasked"] is False


def test_unmasked_personal_data_is_logged_as_unmasked(residents):
    df = residents.residents(unmasked=True, actor="auditor", purpose="court order 2026-17")
    assert df.set_index("id").loc[1, ["name", "id_card", "phone"]].tolist() == list(PII.values())
    assert scalar(residents.engine, "SELECT (detail->>'unmasked')::bool FROM pii_access_log") is True


@pytest.mark.parametrize("who", [{}, {"actor": "someone"}, {"purpose": "curiosity"}, {"actor": "", "purpose": "x"}])
def test_personal_data_without_actor_and_purpose_is_refused(residents, who):
    for flags in ({"personal": True}, {"unmasked": True}):
        with pytest.raises(InvalidInput) as exc:
            residents.residents(**flags, **who)
        assert exc.value.field == "actor/purpose" and "actor=" in str(exc.value)
    assert scalar(residents.engine, "SELECT count(*) FROM pii_access_log") == 0


def test_pii_access_log_is_append_only(residents):
    residents.residents(personal=True, actor="a", purpose="p")
    with residents.engine.begin() as conn:
        conn.execute(text("UPDATE pii_access_log SET actor = 'nobody'"))
        conn.execute(text("DELETE FROM pii_access_log"))
    assert scalar(residents.engine, "SELECT actor FROM pii_access_log") == "a"


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "parquet"])
def test_no_export_contains_personal_data(residents, tmp_path, fmt):
    db = residents
    db.load("fire_equipment", write(equipment(), tmp_path / "fe.geojson"))
    grid = gpd.GeoDataFrame({"code": ["G1"], "name": ["一网格"]}, geometry=[box(120.09, 30.27, 0.03, 0.02)],
                            crs="EPSG:4326")
    db.load("grids", write(grid, tmp_path / "g.geojson"))
    sensitive = {c.name for t in LAYERS.values() for c in t.table.columns if c.info.get("sensitive")}
    sensitive |= {"id_card", "phone"}
    for name in db.layers():
        out = tmp_path / f"{name}.{fmt}"
        db.export(name, out)
        cols = set(read(out).columns)
        assert not cols & sensitive, f"{name} exports {cols & sensitive}"
        blob = out.read_bytes()
        for value in PII.values():
            assert value.encode() not in blob, f"{name}.{fmt} contains {value}"
    with pytest.raises(NotFound):
        db.export("resident_pii", tmp_path / f"pii.{fmt}")
    with pytest.raises(NotFound):
        db.export("residents", tmp_path / f"residents.{fmt}")


def test_sensitive_columns_are_never_loadable_or_readable():
    from gridmap.storage import models as m
    from gridmap.storage.layers import LayerSpec

    spec = LayerSpec("team_members", m.TeamMember, "point", ("code",))
    assert spec.sensitive_columns == ["phone"]
    assert "phone" not in [c.name for c in spec.writable] and "phone" not in spec.public_columns


def test_restricted_column_cannot_be_selected(db):
    with pytest.raises(InvalidInput) as exc:
        db.layer("buildings", columns=["code", "phone"])
    assert exc.value.field == "columns" and "phone" in str(exc.value)
