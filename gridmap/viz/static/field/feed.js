// The team's live feed: the WebSocket /v1/me/feed/ws first, server-sent events (GET /v1/me/feed, read with
// fetch so that the bearer token goes in a header, which EventSource cannot send) when WebSockets fail twice in
// a row. Reconnects with backoff (see backoffDelay); every (re)connection starts with a snapshot of the team's
// open assignments, so nothing missed while away is lost.

// The reconnect schedule: after the n-th failure in a row (n >= 1) wait 1 s * 2^(n-1), capped at 30 s, times a
// jitter factor drawn uniformly from [0.75, 1.25] (so phones cut off together do not all come back in the same
// instant): about 1, 2, 4, 8, 16, 30, 30 ... s. The count goes back to zero once a connection delivers its first
// message (the snapshot), so the next loss starts again at about 1 s. tests/field/test_field_alerts_browser.py
// checks this schedule in the browser.
export const BACKOFF = {firstMs: 1000, capMs: 30000, jitter: 0.25};
export function backoffDelay(failures, random = Math.random) {
  const base = Math.min(BACKOFF.firstMs * 2 ** (failures - 1), BACKOFF.capMs);
  return base * (1 - BACKOFF.jitter + 2 * BACKOFF.jitter * random());
}

export class Feed extends EventTarget {
  constructor(getToken) {
    super();
    this.getToken = getToken;
    this.failures = 0;
    this.wsFailures = 0;
    this.mode = 'ws';
    this.stopped = true;
    this.ws = null;
    this.abort = null;
    this.timer = null;
    this.connected = false;
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, {detail})); }

  start() { this.stopped = false; this.connect(); }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
    if (this.abort) { this.abort.abort(); this.abort = null; }
    this.setConnected(false);
  }

  setConnected(on) {
    if (this.connected !== on) { this.connected = on; this.emit('status', {connected: on, mode: this.mode}); }
  }

  reconnect() {
    this.setConnected(false);
    if (this.stopped) return;
    this.failures += 1;
    const delay = backoffDelay(this.failures);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  now() { clearTimeout(this.timer); if (!this.connected && !this.stopped) this.connect(); }

  handle(msg) {
    if (msg.type === 'snapshot' || msg.type === 'assignment') {
      this.failures = 0;  // connected: the next loss starts the schedule again
      this.setConnected(true);
      this.emit('message', msg);
    } else if (msg.type === 'error') {
      this.emit('auth', msg);
      this.stop();
    }
  }

  async connect() {
    if (this.stopped) return;
    const token = await this.getToken();
    if (!token) return;
    if (this.mode === 'ws' && this.wsFailures < 2 && 'WebSocket' in self) this.connectWs(token);
    else this.connectSse(token);
  }

  connectWs(token) {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/me/feed/ws`;
    let opened = false;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => { opened = true; this.wsFailures = 0; ws.send(JSON.stringify({token})); };
    ws.onmessage = (e) => { try { this.handle(JSON.parse(e.data)); } catch (err) { /* not JSON: ignore */ } };
    ws.onclose = (e) => {
      this.ws = null;
      if (e.code === 4401 || e.code === 4403) { this.emit('auth', {code: e.code}); this.stop(); return; }
      if (!opened) { this.wsFailures += 1; if (this.wsFailures >= 2) this.mode = 'sse'; }
      this.reconnect();
    };
  }

  async connectSse(token) {
    this.mode = 'sse';
    const ctl = new AbortController();
    this.abort = ctl;
    try {
      const r = await fetch('/v1/me/feed', {headers: {Authorization: `Bearer ${token}`, Accept: 'text/event-stream'},
        signal: ctl.signal, cache: 'no-store'});
      if (r.status === 401 || r.status === 403) { this.emit('auth', {code: r.status}); this.stop(); return; }
      if (!r.ok || !r.body) throw new Error(`feed ${r.status}`);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
          if (data) { try { this.handle(JSON.parse(data)); } catch (err) { /* keep-alive or partial */ } }
        }
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
    }
    this.abort = null;
    if (!this.stopped) {
      // every so often try the WebSocket again
      if (this.failures > 3) { this.mode = 'ws'; this.wsFailures = 0; }
      this.reconnect();
    }
  }
}
