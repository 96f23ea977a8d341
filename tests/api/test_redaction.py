"""Personal data typed into free text: one redaction (gridmap.core.privacy.redact_text), on every read path, for
every role without the right to personal data; operators and admins read the text as it was typed."""

from __future__ import annotations

import itertools
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from gridmap.core.privacy import redact_text, redact_values
from gridmap.services.registry import Registry
from tests.api.conftest import query, recv, team_user

_ids = itertools.count(1)

# -- the redaction itself ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "want"), [
    # mobile numbers, every way people write them
    ("电话13812345678", "电话***"), ("138 1234 5678 请回电", "*** 请回电"), ("138-1234-5678", "***"),
    ("+86 138 1234 5678", "***"), ("+8613812345678", "***"), ("0086-13812345678", "***"),
    # landlines with an area code, and local numbers after a contact word
    ("座机 0571-88881234 或 057188881234", "座机 *** 或 ***"), ("(0571) 8888 1234", "***"),
    ("0571-8888-1234转123", "***"), ("联系电话：88886666", "联系电话：***"), ("tel 8888 6666", "tel ***"),
    # ID cards (18 digits, X; the old 15), bank cards, e-mail, QQ / WeChat
    ("身份证33010619900101123X请核实", "身份证***请核实"), ("身份证 330106199001011234", "身份证 ***"),
    ("旧证330106900101123", "旧证***"), ("卡号6222021234567890123", "卡号***"),
    ("卡号 6222 0212 3456 7890", "卡号 ***"), ("邮箱 wang.xm+1@example.com.cn 联系", "邮箱 *** 联系"),
    ("QQ号 12345678，微信: wx_abc123", "QQ号 ***，微信: ***"),
    # names where they can be recognised
    ("王先生反映噪音", "***反映噪音"), ("李阿姨家漏水", "***家漏水"), ("陈小明女士来电", "***来电"),
    ("欧阳娜娜女士反映", "***反映"), ("张师傅修好了", "***修好了"), ("赵大爷摔倒", "***摔倒"),
    ("我叫张伟，住3幢", "我叫***，住3幢"), ("姓王，男", "姓***，男"), ("姓名：李雷", "姓名：***"),
    ("报警人：刘德华", "报警人：***"), ("联系人 周杰 电话 13900001111", "联系人 *** 电话 ***"),
    ("业主张三反映漏水", "业主***反映漏水"), ("老王说楼上漏水", "***说楼上漏水"),
    # what stays: addresses, house numbers, ticket numbers, dates, amounts, plates, plain words
    ("文二路188号116幢飞线充电", "文二路188号116幢飞线充电"), ("3幢2单元1202室噪音", "3幢2单元1202室噪音"),
    ("HZ12345-20261122-0001 工单", "HZ12345-20261122-0001 工单"), ("2026年11月22日 09:30 共3人", "2026年11月22日 09:30 共3人"),
    ("金额 20000000 元", "金额 20000000 元"), ("车牌浙A12345", "车牌浙A12345"), ("有位先生反映", "有位先生反映"),
    ("12345热线转来", "12345热线转来"), ("", ""),
])
def test_redaction_catches_what_it_can_and_keeps_the_rest(text, want):
    assert redact_text(text) == want


def test_the_reporters_own_name_and_its_forms_are_blanked():
    names = ["王小明"]
    assert redact_text("王小明来电反映邻居噪音", names) == "***来电反映邻居噪音"
    assert redact_text("王先生说，王女士也说", names) == "***说，***也说"
    assert redact_text("老王家门口", names) == "***家门口"
    assert redact_text("欧阳娜娜来电，欧阳女士", ["欧阳娜娜"]) == "***来电，***"
    assert redact_text("张伟来电") == "张伟来电"  # a bare name nobody told us about: the documented limit
    assert redact_text("王小明来电", [None, "", "王"]) == "王小明来电"  # no usable name: nothing blanked by it


@pytest.mark.parametrize("missing", [None, np.nan, float("nan"), pd.NA, pd.NaT])
def test_redaction_takes_missing_values(missing):
    assert redact_text(missing) is None
    assert redact_values([missing, "电话13812345678"], [(), ("王小明",)]) == [None, "电话***"]


# -- over HTTP ---------------------------------------------------------------------------------------------
SECRETS = ("王小明", "王先生", "13812345678", "330106199001011234", "wxm@example.com", "张阿姨", "0571-88881234")
TITLE = "王小明来电 13812345678 邻居噪音"
DESCRIPTION = "联系人王先生，身份证330106199001011234，邮箱 wxm@example.com；另有张阿姨 0571-88881234 作证"


def no_secret(text: str, who: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert leaked == [], f"{who} sees {leaked}"


@pytest.fixture
def reported(client, users, api_engine, field):
    """An event in the grid worker's grid, with personal data in its title and description and a reporter,
    dispatched to a team; that team's volunteer; and an operator's note with a phone number."""
    grid = client.get("/v1/me", headers=users["gridworker"]["headers"]).json()["grids"][0]
    (lon, lat), = query(api_engine, "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM buildings "
                                    "WHERE grid_code = :g ORDER BY code LIMIT 1", g=grid)
    body = {"channel": "hotline_12345", "external_id": f"PII-{next(_ids):04d}", "category": "neighbour_dispute",
            "location": {"lon": lon, "lat": lat}, "title": TITLE, "description": DESCRIPTION,
            "reporter": {"name": "王小明", "phone": "13812345678"}}
    r = client.post("/v1/events", json=body, headers=users["intake"]["headers"])
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["dispatch"]["team"], out["dispatch"]
    eid = out["event"]["id"]
    r = client.post(f"/v1/events/{eid}/transitions", json={"action": "accept", "note": "已联系王先生 13812345678"},
                    headers=users["operator"]["headers"])
    assert r.status_code == 200, r.text
    vol = team_user(client, api_engine, users["admin"]["headers"], out["dispatch"]["team"])
    return {"id": eid, "intake": out, "volunteer": vol, "team": out["dispatch"]["team"], "body": body}


def test_team_roles_and_intake_never_read_personal_data_typed_into_an_event(client, users, reported):
    eid = reported["id"]
    no_secret(json.dumps(reported["intake"], ensure_ascii=False), "the intake client (its own POST's answer)")
    readers = {"grid worker": users["gridworker"]["headers"], "volunteer": reported["volunteer"]["headers"]}
    for who, headers in readers.items():
        one = client.get(f"/v1/events/{eid}", headers=headers)
        assert one.status_code == 200, (who, one.text)
        no_secret(one.text, who)
        assert one.json()["title"] == "***来电 *** 邻居噪音" and one.json().get("reporter") is None
        listed = client.get("/v1/events", headers=headers, params={"limit": 500})
        assert listed.status_code == 200 and any(e["id"] == eid for e in listed.json()), who
        no_secret(listed.text, who)
        trail = client.get(f"/v1/events/{eid}/history", headers=headers)
        assert trail.status_code == 200 and any(t["note"] == "已联系*** ***" for t in trail.json()), trail.text
        no_secret(trail.text, who)
    # the team's own assignments, one by one and in the live feed's snapshot
    vol = reported["volunteer"]
    mine = client.get("/v1/me/assignments", headers=vol["headers"], params={"active": False})
    assert any(a["event"]["id"] == eid for a in mine.json()), mine.text
    no_secret(mine.text, "volunteer's assignments")
    aid = reported["intake"]["dispatch"]["assignment_id"]
    one = client.get(f"/v1/assignments/{aid}", headers=vol["headers"])
    assert one.status_code == 200 and one.json()["event"]["title"] == "***来电 *** 邻居噪音"
    with client.websocket_connect("/v1/me/feed/ws", headers=vol["headers"]) as ws:
        snap = recv(ws)
    assert snap["type"] == "snapshot"
    no_secret(json.dumps(snap, ensure_ascii=False), "volunteer's live feed")


def test_operators_and_admins_read_the_text_as_typed(client, users, reported, api_engine):
    eid = reported["id"]
    before = query(api_engine, "SELECT count(*) FROM pii_access_log")[0][0]
    for role in ("operator", "admin"):
        headers = users[role]["headers"]
        listed = [e for e in client.get("/v1/events", headers=headers, params={"limit": 500}).json() if e["id"] == eid]
        assert listed and listed[0]["title"] == TITLE and listed[0]["description"] == DESCRIPTION, role
        trail = client.get(f"/v1/events/{eid}/history", headers=headers).json()
        assert any(t["note"] == "已联系王先生 13812345678" for t in trail), role
    # reading free text is not a read of the reporter's contact: the log is unchanged
    assert query(api_engine, "SELECT count(*) FROM pii_access_log")[0][0] == before
    one = client.get(f"/v1/events/{eid}", headers=users["operator"]["headers"], params={"purpose": "call back"}).json()
    assert one["title"] == TITLE and one["reporter"] == {"name": "王小明", "phone": "13812345678"}
    assert query(api_engine, "SELECT count(*) FROM pii_access_log")[0][0] == before + 1  # that one is logged


def test_the_layers_endpoint_checks_the_role_and_redacts_events(client, users, reported, api_engine):
    (lon, lat), = query(api_engine, "SELECT ST_X(geom), ST_Y(geom) FROM events WHERE id = :e", e=reported["id"])
    bbox = f"{lon - 1e-4},{lat - 1e-4},{lon + 1e-4},{lat + 1e-4}"
    planner = client.get("/layers/events", params={"bbox": bbox}, headers=users["planner"]["headers"])
    assert planner.status_code == 200, planner.text
    assert planner.headers["content-type"].startswith("application/geo+json")
    mine = [f for f in planner.json()["features"] if f["properties"]["id"] == reported["id"]]
    assert mine and mine[0]["properties"]["title"] == "***来电 *** 邻居噪音"
    no_secret(planner.text, "planner's events layer")
    admin = client.get("/layers/events", params={"bbox": bbox}, headers=users["admin"]["headers"]).json()
    assert any(f["properties"]["title"] == TITLE for f in admin["features"])
    for who in ("gridworker", "intake"):
        for name in ("events", "teams"):
            r = client.get(f"/layers/{name}", params={"limit": 1}, headers=users[who]["headers"])
            assert r.status_code == 403 and r.json()["field"] == "layer", (who, name, r.text)
        assert client.get("/layers/buildings", params={"limit": 1}, headers=users[who]["headers"]).status_code == 200
    # an operator reads the events of their street only (here: asking for the whole district)
    r = client.get("/layers/events", params={"area": "330106", "limit": 1}, headers=users["operator"]["headers"])
    assert r.status_code == 403 and r.json()["field"] == "area", r.text


def test_exports_redact_free_text(api_engine, api_settings, reported, tmp_path):
    reg = Registry(api_engine, api_settings)
    path = tmp_path / "events.geojson"
    reg.export("events", path, area=reported["intake"]["event"]["area"]["grid"])
    gdf = gpd.read_file(path)
    row = gdf[gdf["id"] == reported["id"]].iloc[0]
    assert row["title"] == "***来电 *** 邻居噪音"
    no_secret(path.read_text(encoding="utf-8"), "an export")
