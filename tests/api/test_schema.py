"""schemathesis over the whole OpenAPI schema, against the API served by uvicorn on loopback, as an admin
(who reaches every operation's code paths): no 5xx, and every response (status code, content type,
headers, body) matches the schema; requests that break the schema are refused.

Not checked: "every schema-valid request is accepted" — a valid-looking request may still name an area,
team or category that does not exist, or an illegal transition, and those are refused with 404/409/422
on purpose. The dashboard's routes (api/dashboard.py, another module's) are left to its own suite.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from api.app import create_app
from gridmap.config import Settings
from tests.api.conftest import PASSWORD, login

pytestmark = [pytest.mark.db]
# The schema only: building the app object connects nothing (that happens in its lifespan).
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi()).exclude(path_regex="^/dashboard")
# A body over GRIDMAP_MAX_BODY_BYTES (a batch of positions beyond its maximum, say) is refused with 413 before it
# is parsed: a rejection of invalid data too.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]


#: Operations that end the caller's session (or count its wrong passwords): they run as another admin,
#: logged in afresh for each case, so that the suite's shared admin keeps its session.
ENDS_SESSIONS = {"/v1/auth/logout", "/v1/auth/logout-all", "/v1/me/password"}


@pytest.fixture(scope="module")
def second_admin(client, users) -> str:
    r = client.post("/v1/users", json={"username": "schema-admin", "password": PASSWORD, "role": "admin"},
                    headers=users["admin"]["headers"])
    assert r.status_code == 201, r.text
    return "schema-admin"


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_conforms_to_the_schema(case, live_server, users, client, second_admin):
    headers = login(client, second_admin)["headers"] if case.path in ENDS_SESSIONS else users["admin"]["headers"]
    case.call_and_validate(base_url=live_server, headers=headers, excluded_checks=[positive_data_acceptance])
