"""Schemathesis against the whole API, with every role's token and the sample street's real data.

Each operation of ``/openapi.json`` is called with generated requests (valid and invalid) as each role, with
real codes and points inside the street mixed into the generated values (:mod:`tests.api.domain`), so the
requests get past the first 404 or 422 into dispatch, the lifecycle and the dashboard's drill-downs. A
stateful run follows the OpenAPI links: report an event, dispatch it, accept, arrive, resolve, read it back.

Checks: no 5xx; status codes, content types, headers and bodies as documented; invalid requests refused.
Not checked: that every schema-valid request is accepted (``positive_data_acceptance``) — categories, codes
and points are data, not schema, and the API rightly answers 404 or 422 for a well-formed unknown one.

The app runs in its own copy of the sample street (``<test db>_fuzz``) with a fixed clock, so what the
generated requests change (users, events, team statuses) touches no other test.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from types import SimpleNamespace

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.hooks import HookDispatcher, HookScope
from schemathesis.specs.openapi import checks as oa
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.app import create_app
from gridmap.config import Settings
from gridmap.services import auth
from gridmap.services.registry import Registry
from tests.api.conftest import PASSWORD, START, Clock, login, refresh_positions
from tests.api.domain import Domain, mixed

pytestmark = [pytest.mark.db]
_reports = itertools.count(1)
ROLES = ("admin", "operator", "planner", "intake", "gridworker", "volunteer")
#: calls that end the caller's own session or account: they would log the fuzzing identity out mid-run (the
#: route x identity matrix tests them)
NOT_FUZZED = {("POST", "/v1/auth/logout"), ("POST", "/v1/auth/logout-all"), ("POST", "/v1/me/password"),
              ("POST", "/dashboard/logout")}
#: the fuzzing identities' names: nothing a generator would write by chance (an admin call on a user it names, e.g.
#: DELETE /v1/users/{username}/sessions, would otherwise end the fuzzing admin's own session)


CHECKS = [not_a_server_error, oa.status_code_conformance, oa.content_type_conformance,
          oa.response_headers_conformance, oa.response_schema_conformance, oa.negative_data_rejection]


@pytest.fixture(scope="module")
def fuzz_env(sample_street_db, api_settings):
    """The app on its own copy of the sample street, a user per role, and the street's real data."""
    engine = sample_street_db("fuzz", pool_size=10, max_overflow=10)
    clock = Clock(START)
    # the generated logins fail by the thousand from one address: the throttle (tested on its own) would lock the
    # fuzzing identities out of their own re-logins
    settings_ = api_settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48)),
                                                "login_address_limit": 100_000, "login_user_limit": 1000})
    app = create_app(settings_, Registry(engine, settings_), clock=clock)
    with TestClient(app) as client:
        with engine.connect() as conn:
            street = conn.execute(text("SELECT code FROM areas WHERE level = 'street' AND valid_to IS NULL "
                                       "ORDER BY population DESC NULLS LAST LIMIT 1")).scalar_one()
            members = conn.execute(text(
                "SELECT m.code FROM team_members m WHERE m.team_id IS NOT NULL ORDER BY m.code LIMIT 2")).scalars().all()
        specs = {"admin": ("admin", None, None), "operator": ("operator", street, None), "planner": ("planner", None, None),
                 "intake": ("intake", None, None), "gridworker": ("grid_worker", None, members[0]),
                 "volunteer": ("volunteer", None, members[1])}
        with Session(engine) as s:
            for name, (role, st_code, member) in specs.items():
                auth.create_user(s, username=f"fz-{name}-q7", password=PASSWORD, role=role, street_code=st_code,
                                 member_code=member)
            for i in range(5):  # users the generated requests may change or delete
                auth.create_user(s, username=f"spare{i}", password=PASSWORD, role="planner")
        tokens: dict[str, dict] = {}

        def relogin() -> None:
            tokens.update({name: login(client, f"fz-{name}-q7")["headers"] for name in specs})

        relogin()
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE testkit_fuzz AS SELECT id, status FROM teams"))

        def reset() -> None:
            """An hour later, no open offer, teams as loaded and where they are now: the same start each time."""
            clock.advance(hours=1)
            relogin()
            with engine.begin() as conn:
                conn.execute(text("UPDATE assignments SET status = 'cancelled' WHERE status IN ('offered', 'accepted')"))
                conn.execute(text("UPDATE teams t SET status = b.status FROM testkit_fuzz b WHERE b.id = t.id"))
                # an answer's Idempotency-Key is kept for days: a key drawn again in a later example must not
                # meet the first one (a 422 then, where the first example got a 200)
                conn.execute(text("DELETE FROM idempotency_keys"))
            app.state.dispatcher.rebuild(clock())
            refresh_positions(client, engine, tokens["admin"], clock())

        reset()
        points = Domain.read(engine).points
        for i in range(12):  # open events with offers, so that assignments exist to be answered
            r = client.post("/v1/events", headers=tokens["intake"], json={
                "channel": "hotline_12345", "external_id": f"FUZZ-{i:03d}", "category": "neighbour_dispute",
                "location": {"lon": points[i * 30][0], "lat": points[i * 30][1]}})
            assert r.status_code == 201, r.text
        domain = Domain.read(engine)
        assert domain.assignments, "no event was dispatched: the fuzzing would not reach the assignments"
        yield SimpleNamespace(app=app, tokens=tokens, domain=domain, reset=reset, relogin=relogin)
    engine.dispose()


def _layer_names(app) -> list[str]:
    return Registry.layers()


def _strategies(domain: Domain, app) -> dict[str, st.SearchStrategy]:
    """Real values by parameter or field name (whatever the operation)."""
    codes = domain.buildings + domain.businesses
    skills = ("fire", "medical", "dispute", "patrol", "elderly_care", "environment")
    return {
        "area": st.sampled_from(domain.areas), "street_code": st.sampled_from(domain.streets),
        "category": st.sampled_from(domain.categories), "team": st.sampled_from(domain.teams),
        "building_code": st.sampled_from(domain.buildings), "place_code": st.sampled_from(codes),
        "event_id": st.sampled_from(domain.events), "assignment_id": st.sampled_from(domain.assignments),
        "skills": st.lists(st.sampled_from(skills), min_size=1, max_size=2),
        "username": st.sampled_from([f"spare{i}" for i in range(5)]),
        "name": st.sampled_from(_layer_names(app)), "kind": st.sampled_from(("team", "fire", "micro_fire_station",
                                                                             "micro_fire_truck", "hydrant")),
        "bbox": st.just(",".join(f"{v:.5f}" for v in domain.bbox)),
        "at": st.just(START.isoformat()), "reported_at": st.just((START - dt.timedelta(minutes=5)).isoformat()),
    }


def _code_for(path: str, domain: Domain) -> tuple[str, ...]:
    if "/teams/" in path:
        return domain.teams
    if "/places/" in path:
        return domain.buildings + domain.businesses
    return domain.buildings


def _enrich(value, real: dict, domain: Domain) -> st.SearchStrategy:
    """A strategy that keeps ``value``'s shape and swaps in real values where the names say what they are."""
    if isinstance(value, dict):
        def part(k, v):
            if isinstance(v, dict | list):
                return _enrich(v, real, domain)
            return st.one_of(real[k], real[k], real[k], st.just(v)) if k in real else st.just(v)

        drawn = st.fixed_dictionaries({k: part(k, v) for k, v in value.items()})
        if "lon" in value and "lat" in value:  # a point: inside the street three times in four
            def place(d, pt):
                return {**d, "lon": pt[0], "lat": pt[1]} if pt is not None else d

            drawn = st.tuples(drawn, st.one_of(domain.point(), domain.point(), domain.point(), st.none())).map(
                lambda t: place(*t))
        return drawn
    if isinstance(value, list):
        if value and all(isinstance(v, list) and len(v) == 2 for v in value):  # [[lon, lat], ...]
            return st.lists(domain.point().map(list), min_size=1, max_size=20)
        return st.tuples(*(_enrich(v, real, domain) for v in value)).map(list) if value else st.just(value)
    return st.just(value)


def _hooks(domain: Domain, app, hooks: HookDispatcher | None = None) -> HookDispatcher:
    """The hooks that mix real values into generated requests (valid ones only: an invalid request keeps the
    mutation schemathesis made, or it would no longer be invalid)."""
    real = _strategies(domain, app)
    hooks = hooks if hooks is not None else HookDispatcher(scope=HookScope.SCHEMA)
    clean_report = st.builds(
        lambda channel, category, pt, title: {"channel": channel, "external_id": "FZ", "category": category,
                                              "location": {"lon": pt[0], "lat": pt[1]}, "title": title},
        st.sampled_from(("hotline_12345", "chat_group", "patrol")), real["category"], domain.point(),
        st.none() | st.text(max_size=40))

    @hooks.hook
    def flatmap_path_parameters(context, path_parameters):
        if not path_parameters:
            return st.just(path_parameters)
        path = context.operation.path
        parts = {}
        for k, v in path_parameters.items():
            if k == "code":
                parts[k] = mixed(_code_for(path, domain), v)
            elif k in real:
                parts[k] = st.one_of(real[k], real[k], real[k], st.just(v))
            else:
                parts[k] = st.just(v)
        return st.fixed_dictionaries(parts)

    @hooks.hook
    def flatmap_query(context, query):
        if not query:
            return st.just(query)
        base = _enrich(query, real, domain)
        if "lon" in query or "lat" in query:
            return st.tuples(base, st.one_of(domain.point(), domain.point(), st.none())).map(
                lambda t: t[0] if t[1] is None else {**t[0], "lon": t[1][0], "lat": t[1][1]})
        return base

    @hooks.hook
    def flatmap_body(context, body):
        if not isinstance(body, dict | list):
            return st.just(body)
        drawn = _enrich(body, real, domain)
        if context.operation.path == "/v1/events" and context.operation.method.upper() == "POST":
            # a plain report (real category, a point in the street) three times in four: most generated reports
            # trip over a random building or place code, and the lifecycle behind them is never reached
            drawn = st.one_of(clean_report, clean_report, clean_report, drawn)
        if isinstance(body, dict) and isinstance(body.get("external_id"), str):
            # a new report each time: a repeated id is a replay (200) or a conflict (409), so the same drawn steps
            # would not give the same answers twice, and hypothesis would call the generation flaky
            drawn = drawn.map(lambda d: {**d, "external_id": f"{d['external_id'][:40]}~{next(_reports)}"})
        return drawn

    return hooks


def _operations() -> list[tuple[str, str]]:
    """Every documented operation, read from the app's OpenAPI (building it needs no database)."""
    spec = create_app(Settings(secret_key=SecretStr(secrets.token_urlsafe(48)))).openapi()
    return sorted((m.upper(), path) for path, ops in spec["paths"].items() for m in ops
                  if (m.upper(), path) not in NOT_FUZZED)


@pytest.fixture(scope="module")
def api_schema(fuzz_env):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_env.app), _hooks(fuzz_env.domain, fuzz_env.app)


@pytest.mark.parametrize("method, path", _operations())
def test_no_5xx_and_responses_conform(api_schema, fuzz_env, method, path):
    """Valid and invalid requests, as any role, with real data mixed in: no 5xx, responses as documented."""
    fuzz_env.relogin()  # a session the last operation's generated calls may have ended
    tokens = fuzz_env.tokens
    schema, real_data = api_schema
    op = schema[path][method]
    empty = HookDispatcher(scope=HookScope.SCHEMA)

    def cases(role: str):  # the role's token is fixed, so no mutation of the request drops or replaces it
        return st.one_of(op.as_strategy(GenerationMode.POSITIVE, hooks=real_data, headers=tokens[role]),
                         op.as_strategy(GenerationMode.NEGATIVE, hooks=empty, headers=tokens[role]))

    @given(case=st.sampled_from(ROLES).flatmap(cases))
    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        note(f"as {case.headers['Authorization'][:20]}...")
        case.call_and_validate(checks=CHECKS)

    run()


#: the operations of the stateful run (fewer rules, so the walk gets deep), and the ones it must get through
LIFECYCLE = {("POST", "/v1/events"), ("GET", "/v1/events/{event_id}"), ("POST", "/v1/events/{event_id}/dispatch"),
             ("POST", "/v1/assignments/{assignment_id}/accept"), ("POST", "/v1/assignments/{assignment_id}/arrive"),
             ("POST", "/v1/assignments/{assignment_id}/resolve")}
DEEP = {("POST", "/v1/events"), ("POST", "/v1/assignments/{assignment_id}/accept"),
        ("POST", "/v1/assignments/{assignment_id}/arrive"), ("POST", "/v1/assignments/{assignment_id}/resolve")}


def test_stateful_runs_follow_the_links_through_the_lifecycle(fuzz_env):
    """Report an event -> it is offered -> accepted -> arrived -> resolved (and read, escalated, declined,
    handed up on the way), following the OpenAPI links with real data, as an admin: no 5xx, every response as
    documented, and the whole lifecycle reached."""
    app, tokens = fuzz_env.app, fuzz_env.tokens
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    _hooks(fuzz_env.domain, app, schema.hooks)
    # the admin's token on every call, and no generated Authorization header (no mutation can drop it)
    schema.config.update(headers=tokens["admin"])
    schema.config.generation.update(with_security_parameters=False)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])  # invalid requests: the test above
    machine = schema.include(func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in LIFECYCLE
                             ).as_state_machine()
    reached: dict[tuple[str, str], int] = {}

    class Lifecycle(machine):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            fuzz_env.reset()  # each example starts from the same street, or hypothesis sees a flaky generator
            super().__init__()

        def after_call(self, response, case):
            super().after_call(response, case)
            if response.status_code < 300:
                key = (case.operation.method.upper(), case.operation.path)
                reached[key] = reached.get(key, 0) + 1

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)

    run_state_machine_as_test(Lifecycle, settings=settings(
        max_examples=50, stateful_step_count=20, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck)))
    missing = DEEP - set(reached)
    assert not missing, f"the stateful run never got through {sorted(missing)}; it reached {sorted(reached)}"
