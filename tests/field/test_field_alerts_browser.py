"""The field app's alerts, the rung's countdown, the one-handed layout and the live feed's reconnects, in Debian's
Chromium with a phone's viewport against the real server and PostGIS (issue 12, item 4 and 5).

Init scripts record what the page asks of the phone: ``navigator.vibrate``, the Web Audio oscillators of the tone,
``HTMLMediaElement.play``, the ``Notification`` constructor and ``ServiceWorkerRegistration.showNotification``;
the page's visibility is emulated (``document.visibilityState`` + a ``visibilitychange`` event). Time is
Playwright's fake clock where it matters (the countdown, the reconnect delays): no test reads the wall clock.

Each test signs in on its own phone and leaves the team on duty with nothing open (every event it made resolved),
as the other browser tests expect.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.field.conftest import phone_context, query, real_errors, sign_in, watch

pytestmark = [pytest.mark.db]

# the spots of these tests: half-way between those of test_field_browser.py, > 100 m (the near-duplicate radius)
# from each of them and from each other
_spots = itertools.cycle([(-0.0008, -0.0007), (0.0008, -0.0007), (-0.0008, 0.0007), (0.0008, 0.0007)])

RECORDER = r"""
(() => {
  const rec = window.__gmRec = {vibrate: [], tones: [], plays: [], notifications: [], attempts: [], closes: []};
  // the page's visibility, as the test says (another app or tab in front: hidden)
  let hidden = false;
  Object.defineProperty(Document.prototype, 'visibilityState', {configurable: true, get: () => (hidden ? 'hidden' : 'visible')});
  Object.defineProperty(Document.prototype, 'hidden', {configurable: true, get: () => hidden});
  window.__gmSetHidden = (h) => { hidden = h; document.dispatchEvent(new Event('visibilitychange')); };
  const vis = () => (hidden ? 'hidden' : 'visible');
  Navigator.prototype.vibrate = function (pattern) {
    rec.vibrate.push({pattern: [].concat(pattern), visibility: vis()});
    return true;
  };
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) {
    rec.tones.push({hz: this.frequency.value, visibility: vis()});
    return start.apply(this, args);
  };
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function (...args) {
    rec.plays.push({src: this.currentSrc || this.src, visibility: vis()});
    return play.apply(this, args);
  };
  const N = window.Notification;
  window.Notification = class extends N {
    constructor(title, options) {
      rec.notifications.push({via: 'page', title, tag: options && options.tag, visibility: vis()});
      super(title, options);
    }
  };
  const show = ServiceWorkerRegistration.prototype.showNotification;
  ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
    rec.notifications.push({via: 'sw', title, tag: options && options.tag, body: options && options.body,
                            vibrate: options && options.vibrate, visibility: vis()});
    return show.call(this, title, options);
  };
  // the live feed's connection attempts and losses, on the page's clock (Playwright's fake one when installed)
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...args) {
      super(...args);
      rec.attempts.push({kind: 'ws', at: Date.now()});
      this.addEventListener('close', () => rec.closes.push({kind: 'ws', at: Date.now()}));
    }
  };
  const fetch0 = window.fetch;
  window.fetch = function (input, init) {
    const url = String(input && input.url ? input.url : input);
    const p = fetch0.call(this, input, init);
    if (new URL(url, location.href).pathname !== '/v1/me/feed') return p;
    rec.attempts.push({kind: 'sse', at: Date.now()});
    return p.catch((e) => { rec.closes.push({kind: 'sse', at: Date.now()}); throw e; });
  };
})();
"""


class Phone:
    def __init__(self, ctx: BrowserContext, page: Page, errors: list[str]) -> None:
        self.ctx, self.page, self.errors = ctx, page, errors

    def rec(self, what: str) -> Any:
        return self.page.evaluate(f"() => window.__gmRec.{what}")

    def state(self, expr: str) -> Any:
        return self.page.evaluate(f"() => window.gridmapField.{expr}")


class Events:
    """Events posted near the team through intake; each one resolved at the end (nothing left open)."""

    def __init__(self, api, field_db) -> None:
        self.api, self.field_db = api, field_db
        self.made: list[int] = []

    def post(self, description: str = "楼道里有老人摔倒 an old man fell") -> tuple[int, int]:
        dx, dy = next(_spots)
        body = {"channel": "hotline_12345", "external_id": f"ALERT-{time.time_ns()}", "category": "elderly_care",
                "location": {"lon": self.field_db.lon + dx, "lat": self.field_db.lat + dy},
                "description": description}
        r = self.api("intake", "POST", "/v1/events", json=body)
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["dispatch"]["team"] == self.field_db.team, out["dispatch"]
        self.made.append(out["dispatch"]["assignment_id"])
        return out["dispatch"]["assignment_id"], out["event"]["id"]

    def settle(self, aid: int) -> None:
        """Accept, arrive and resolve, skipping the steps the phone already took (409)."""
        for action in ("accept", "arrive", "resolve"):
            r = self.api("volunteer", "POST", f"/v1/assignments/{aid}/{action}", json={})
            assert r.status_code in (200, 409), r.text
        status = query(self.field_db.engine, "SELECT status FROM assignments WHERE id = :a", a=aid)[0][0]
        assert status not in ("offered", "accepted"), (aid, status)

    def settle_all(self) -> None:
        for aid in self.made:
            self.settle(aid)


@pytest.fixture
def events(api, field_db) -> Iterator[Events]:
    ev = Events(api, field_db)
    yield ev
    ev.settle_all()
    team = query(field_db.engine, "SELECT status FROM teams WHERE code = :t", t=field_db.team)[0][0]
    if team == "off_duty":
        assert api("admin", "PUT", f"/v1/teams/{field_db.team}/status", json={"status": "available"}).status_code == 200


class FeedLine:
    """The live feed's line: through to the server while up; while down, the server closes every WebSocket
    and refuses the server-sent events' request."""

    def __init__(self) -> None:
        self.up = True
        self.live: list[tuple[Any, Any]] = []

    def __call__(self, ws) -> None:
        if not self.up:
            ws.close(code=1011, reason="server gone")
            return
        self.live.append((ws, ws.connect_to_server()))

    def http(self, route) -> None:
        if self.up:
            route.fallback()
        else:
            route.abort("connectionrefused")

    def cut(self) -> None:
        self.up = False
        for ws, server in self.live:
            server.close(code=1011, reason="server gone")
            ws.close(code=1011, reason="server gone")
        self.live.clear()


def open_phone(browser, field_server, field_db, *, clock: bool = False, line: FeedLine | None = None) -> Phone:
    ctx = phone_context(browser, field_server, field_db.lon, field_db.lat)
    if line is not None:
        ctx.route_web_socket(re.compile(r".*/v1/me/feed/ws$"), line)
        ctx.route(re.compile(r".*/v1/me/feed$"), line.http)
    ctx.add_init_script(RECORDER)
    if clock:  # the page's clock starts at the server's time and flows until the test pauses it
        ctx.clock.install(time=dt.datetime.now(dt.UTC))
    page = ctx.new_page()
    phone = Phone(ctx, page, watch(page))
    sign_in(page, field_server, field_db.users["volunteer"])
    page.wait_for_function("() => window.gridmapField.feed.connected", timeout=60_000)
    if not phone.state("state.duty"):
        page.click("#duty")
        page.wait_for_function("() => window.gridmapField.state.duty")
    if clock:
        # the team's position is fresh (dispatch needs it); later fixes would carry the fake clock's time, ahead
        # of the server's, and outdate the real fixes of the tests after this one: they are dropped
        page.wait_for_function("() => window.gridmapField.state.lastSent", timeout=30_000)
        ctx.route(re.compile(r".*/v1/teams/positions$"), lambda route: route.abort())
    return phone


def close_phone(phone: Phone) -> None:
    phone.ctx.close()
    assert phone.ctx.guard.foreign == [], f"a request left the app: {phone.ctx.guard.foreign[:5]}"
    assert real_errors(phone.errors) == [], f"errors in the field app: {phone.errors[:5]}"


@pytest.fixture
def phone(browser, field_server, field_db) -> Iterator[Phone]:
    p = open_phone(browser, field_server, field_db)
    yield p
    close_phone(p)


def pause_clock(pg: Page) -> None:
    """Stop the page's fake clock a second after its now: from here on, time moves only when the test says."""
    pg.clock.pause_at(pg.evaluate("() => Date.now()") / 1000 + 1)  # Python's clock takes seconds


def wait_offer(phone: Phone, aid: int) -> None:
    phone.page.wait_for_function(f"() => window.gridmapField.state.assignments.has({aid})", timeout=15_000)


# -- 1. sound, vibration, a system notification; nothing off duty ------------------------------------------------
def test_a_new_offer_rings_and_vibrates_in_front_and_notifies_in_the_background(phone, events, field_db):
    pg = phone.page
    category = phone.state("state.context.categories.elderly_care.name_zh")
    # page in front: the tone and the app's vibration pattern, no system notification
    aid, _ = events.post()
    wait_offer(phone, aid)
    pg.wait_for_function("() => window.__gmRec.vibrate.length > 0")
    assert phone.rec("vibrate") == [{"pattern": [300, 150, 300, 150, 300], "visibility": "visible"}]
    tones = phone.rec("tones")
    assert [t["hz"] for t in tones] == pytest.approx([880, 1175, 880]) and tones[0]["visibility"] == "visible"
    assert phone.rec("plays") == []  # the tone is Web Audio: no sound file
    assert phone.rec("notifications") == []
    events.settle(aid)
    # page hidden (another app in front): a system notification naming the event's category, from the
    # service worker; it is really shown
    pg.evaluate("() => window.__gmSetHidden(true)")
    aid2, _ = events.post()
    wait_offer(phone, aid2)
    pg.wait_for_function("() => window.__gmRec.notifications.length > 0")
    [note] = phone.rec("notifications")
    assert note["via"] == "sw" and note["visibility"] == "hidden" and note["tag"] == f"offer-{aid2}"
    assert category in note["title"] and note["vibrate"] == [300, 150, 300, 150, 300]
    shown = pg.evaluate("async (tag) => (await (await navigator.serviceWorker.ready).getNotifications({tag}))"
                        ".map((n) => n.title)", f"offer-{aid2}")
    assert shown == [note["title"]]
    assert len(phone.rec("vibrate")) == 1  # a hidden page's vibrate is ignored: the notification vibrates
    # answered (here by the command room's test double, through the API): the notification goes away
    events.settle(aid2)
    pg.wait_for_function("async (tag) => (await (await navigator.serviceWorker.ready).getNotifications({tag}))"
                         ".length === 0", arg=f"offer-{aid2}", timeout=30_000)
    pg.evaluate("() => window.__gmSetHidden(false)")


def test_off_duty_an_offer_that_still_reaches_the_phone_makes_no_alert(phone, events, api, field_db):
    pg = phone.page
    pg.wait_for_function("() => !document.querySelector('#offer:not([hidden])')")
    pg.click("#duty")
    pg.wait_for_function("() => !window.gridmapField.state.duty")
    assert query(field_db.engine, "SELECT status FROM teams WHERE code = :t", t=field_db.team)[0][0] == "off_duty"
    # the command room puts the team back on duty; this phone's user is still off duty on it
    assert api("admin", "PUT", f"/v1/teams/{field_db.team}/status", json={"status": "available"}).status_code == 200
    for hidden in (False, True):
        pg.evaluate(f"() => window.__gmSetHidden({'true' if hidden else 'false'})")
        aid, _ = events.post()
        wait_offer(phone, aid)  # it reached the phone ...
        pg.wait_for_selector("#offer:not([hidden])")
        assert phone.rec("vibrate") == [] and phone.rec("tones") == [] and phone.rec("plays") == []  # ... silently
        assert phone.rec("notifications") == []
        events.settle(aid)
        pg.wait_for_function(f"() => window.gridmapField.state.assignments.get({aid}).status !== 'offered'",
                             timeout=15_000)
    pg.evaluate("() => window.__gmSetHidden(false)")


# -- 2. the rung's time limit counts down, then says overdue -------------------------------------------------------
def countdown_s(text: str) -> int:
    m = re.search(r"(\d+):(\d\d)", text)
    assert m, text
    return int(m[1]) * 60 + int(m[2])


def test_the_rungs_time_limit_counts_down_and_turns_overdue(browser, field_server, field_db, events):
    phone = open_phone(browser, field_server, field_db, clock=True)
    pg = phone.page
    try:
        aid, eid = events.post()
        wait_offer(phone, aid)
        pg.click("#offer [data-act=accept]")
        limit = pg.locator("#task [data-limit=rung]")
        limit.wait_for(timeout=15_000)
        due = query(field_db.engine, "SELECT due_at FROM events WHERE id = :e", e=eid)[0][0]
        assert limit.get_attribute("data-countdown") and due is not None
        pause_clock(pg)
        pg.clock.run_for(1000)  # one tick on the paused clock
        first = countdown_s(limit.inner_text())
        pg.clock.run_for(5000)
        second = countdown_s(limit.inner_text())
        assert second == first - 5  # it counts down, second by second
        assert "overdue" not in (limit.get_attribute("class") or "")
        assert "超时" not in limit.inner_text()
        # past the rung's limit: overdue, in red, in Chinese and in English
        due_ms = pg.evaluate("(iso) => new Date(iso).getTime()", limit.get_attribute("data-countdown"))
        pg.clock.fast_forward(int(due_ms - pg.evaluate("() => Date.now()")) + 61_000)
        pg.clock.run_for(1000)
        assert "超时" in limit.inner_text() and countdown_s(limit.inner_text()) >= 61
        assert "overdue" in limit.get_attribute("class")
        # in red (read on the element as it is now: the task card may be drawn again between two reads)
        red = "() => { const el = document.querySelector('#task [data-limit=rung].overdue');" \
              " return el && el.isConnected ? getComputedStyle(el).color : null; }"
        colours = [pg.evaluate(red)]
        while colours[-1] != "rgb(215, 38, 61)" and len(colours) < 20:  # the page's clock is paused: poll here
            time.sleep(0.1)
            colours.append(pg.evaluate(red))
        assert colours[-1] == "rgb(215, 38, 61)", colours
        pg.click("#lang")
        assert "overdue" in pg.locator("#task [data-limit=rung]").inner_text()
        pg.click("#lang")
    finally:
        close_phone(phone)


# -- 3. one hand on a 390 x 844 screen -----------------------------------------------------------------------------
REACH = """(sel) => [...document.querySelectorAll(sel)].filter((b) => b.offsetParent !== null).map((b) => {
  const r = b.getBoundingClientRect();
  const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
  const top = document.elementFromPoint(cx, cy);
  return {name: b.dataset.act || b.id, w: r.width, h: r.height, cy, bottom: r.bottom, right: r.right,
          hit: !!top && (top === b || b.contains(top))};
})"""


def assert_thumb_reach(pg: Page, selector: str, expected: set[str]) -> None:
    vw, vh = pg.evaluate("() => [innerWidth, innerHeight]")
    buttons = pg.evaluate(REACH, selector)
    assert {b["name"] for b in buttons} == expected, buttons
    for b in buttons:
        assert b["w"] >= 44 and b["h"] >= 44, f"{b['name']} is {b['w']:.0f} x {b['h']:.0f} px: below 44 x 44"
        assert 0.4 * vh < b["cy"] and b["bottom"] <= vh and b["right"] <= vw, f"{b['name']} is out of a thumb's reach: {b}"
        assert b["hit"], f"{b['name']} is covered by something else at its centre: {b}"
    assert pg.evaluate("() => document.documentElement.scrollWidth <= innerWidth "
                       "&& document.body.scrollWidth <= innerWidth"), "the page scrolls sideways"


def test_every_primary_action_is_in_a_thumbs_reach_on_390_by_844(phone, events):
    pg = phone.page
    assert pg.evaluate("() => [innerWidth, innerHeight]") == [390, 844]
    long_text = "老人在三楼楼道摔倒，家属不在，门口有快递车挡路，请从北门进入。" * 4
    aid, _ = events.post(description=long_text)
    wait_offer(phone, aid)
    pg.wait_for_selector("#offer .said")  # the card at its longest: what the reporter said is shown
    for lang in ("zh-CN", "en"):  # the longer English labels too
        assert pg.evaluate("() => document.documentElement.lang") == lang
        assert_thumb_reach(pg, "#offer [data-act], #duty", {"accept", "decline", "hand_up", "duty"})
        pg.click("#lang")
    pg.click("#offer [data-act=accept]")
    pg.wait_for_selector("#task:not([hidden]) [data-act=arrive]", timeout=15_000)
    assert_thumb_reach(pg, "#task [data-act], #duty", {"arrive", "hand_up", "duty"})
    pg.click("#task [data-act=arrive]")
    pg.wait_for_selector("#task:not([hidden]) [data-act=resolve]", timeout=15_000)
    assert_thumb_reach(pg, "#task [data-act], #duty", {"resolve", "hand_up", "duty"})
    pg.wait_for_function("() => window.gridmapField.state.queue.length === 0", timeout=15_000)


# -- 4. reconnect with backoff, and what was missed ----------------------------------------------------------------
def test_the_feed_reconnects_with_growing_delays_resets_and_fetches_what_was_missed(browser, field_server, field_db,
                                                                                   events):
    line = FeedLine()
    phone = open_phone(browser, field_server, field_db, clock=True, line=line)
    pg = phone.page
    try:
        assert phone.state("feed.mode") == "ws"
        pause_clock(pg)

        def delays(n: int) -> list[float]:
            """Cut the line and let n retries fail: the time from each loss to the next attempt (page clock)."""
            a0, c0 = len(phone.rec("attempts")), len(phone.rec("closes"))
            line.cut()
            for i in range(n):
                pg.wait_for_function(f"() => window.__gmRec.closes.length > {c0 + i}")
                pg.wait_for_function("() => !window.gridmapField.feed.connected")
                pg.clock.run_for(38_000)  # longer than the longest delay (30 s + 25 %)
                pg.wait_for_function(f"() => window.__gmRec.attempts.length > {a0 + i}")
            pg.wait_for_function(f"() => window.__gmRec.closes.length > {c0 + n}")  # the last one failed too
            closes, attempts = phone.rec("closes")[c0:], phone.rec("attempts")[a0:]
            return [a["at"] - c["at"] for c, a in zip(closes, attempts, strict=False)][:n]

        first = delays(6)
        # 1 s doubling to 30 s, each times a jitter in [0.75, 1.25] (feed.js, backoffDelay)
        for d, base in zip(first, (1, 2, 4, 8, 16, 30), strict=True):
            assert 0.75 * base * 1000 <= d <= 1.25 * base * 1000, (first, base)
        assert all(b > a for a, b in zip(first, first[1:], strict=False)), first  # growing
        # an event offered while the phone had no feed ...
        aid, _ = events.post()
        assert not phone.state(f"state.assignments.has({aid})")
        # ... arrives once the feed is back (the snapshot every connection starts with). The app alternates
        # between the WebSocket and server-sent events while it fails; the line comes back while the WebSocket is
        # next (the test can close a routed WebSocket from the server's side, not a streaming response)
        for _ in range(4):
            if phone.state("feed.mode") == "ws":
                break
            closed = len(phone.rec("closes"))
            pg.clock.run_for(38_000)
            pg.wait_for_function(f"() => window.__gmRec.closes.length > {closed}")
        assert phone.state("feed.mode") == "ws"
        line.up = True
        pg.clock.run_for(38_000)
        pg.wait_for_function("() => window.gridmapField.feed.connected", timeout=20_000)
        wait_offer(phone, aid)
        pg.wait_for_selector("#offer:not([hidden]) [data-act=accept]")
        # a connection that delivered its snapshot resets the schedule: the next loss starts again at ~1 s
        again = delays(2)
        assert 750 <= again[0] <= 1250 and 1500 <= again[1] <= 2500, again
        line.up = True
        pg.clock.run_for(38_000)
        pg.wait_for_function("() => window.gridmapField.feed.connected", timeout=20_000)
    finally:
        close_phone(phone)
