"""The screen's rules without a database: who gets which view, and what is blanked in free text."""

from __future__ import annotations

import pytest

from gridmap.core.levels import Scope
from gridmap.errors import Forbidden, InvalidInput
from gridmap.services.auth import Principal
from gridmap.services.dashboard import Dashboard, redact


def principal(role: str, street: str | None = None) -> Principal:
    """An operator carries their area as a scope (a street here), as AuthService gives it."""
    scope = Scope("street", street, frozenset({street})) if role == "operator" and street else None
    return Principal(user_id=1, username=f"u_{role}", role=role, street=street, scope=scope)


def test_each_role_gets_its_view():
    dash = Dashboard(engine=None, street="330106900")  # nothing connects until a layer is read
    assert dash.view_for(principal("admin")) is dash and dash.scope is None
    assert dash.view_for(principal("planner")) is dash
    op = dash.view_for(principal("operator", "330106901"))
    assert op.scope == "330106901" and op.street == "330106901"
    assert dash.view_for(principal("operator", "330106901")) is op  # one view (and its caches) per street
    assert dash.view_for(principal("operator", "330106900")).scope == "330106900"
    for role in ("volunteer", "grid_worker", "intake"):
        with pytest.raises(Forbidden, match="operators, planners and admins") as exc:
            dash.view_for(principal(role))
        assert "/v1/me/assignments" in exc.value.fix
    with pytest.raises(Forbidden, match="has no area"):
        dash.view_for(principal("operator", None))
    with pytest.raises(InvalidInput, match="needs its street"):
        Dashboard(engine=None, confine=True)


@pytest.mark.parametrize(("text", "want"), [
    ("王先生 13812345678 反映噪音", "*** *** 反映噪音"),  # the name form too (gridmap.core.privacy)
    ("身份证33010619900101123X请核实", "身份证***请核实"),
    ("座机 0571-88881234 或 057188881234", "座机 *** 或 ***"),
    ("文二路188号116幢飞线充电", "文二路188号116幢飞线充电"),  # addresses and house numbers stay
    ("HZ12345-20261122-0001 工单", "HZ12345-20261122-0001 工单"),  # a ticket number is not a phone
    (None, None),
])
def test_phone_and_id_numbers_are_blanked_in_titles(text, want):
    assert redact(text) == want
