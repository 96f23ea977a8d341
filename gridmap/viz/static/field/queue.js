// The offline queue: every action the phone takes (accept, decline, arrive, resolve, hand up, and the photos
// that go with them) is stored in IndexedDB first, then sent in order. Written on the raw IndexedDB API (two
// object stores, a handful of calls) rather than a vendored helper: nothing to keep up to date, no build step.
//
// Each item carries an Idempotency-Key made when the action was taken: sent twice (a lost answer, a retry after
// a reload), the server applies it once and answers the same. Sending stops at the first item that cannot be
// sent now (offline, 5xx, 429: retried with backoff, 1 s doubling to 30 s) and waits (401: sign in again). An
// item the server refuses (403, 404, 409 reassigned, 413, 422) is kept, marked refused with the server's
// reason, and the next item goes on. One sender at a time (Web Locks where the browser has them).
const DB_NAME = 'gridmap-field';
const DB_VERSION = 1;
let dbPromise = null;

function req(r) {
  return new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
}

export function openDb() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const r = indexedDB.open(DB_NAME, DB_VERSION);
      r.onupgradeneeded = () => {
        const db = r.result;
        if (!db.objectStoreNames.contains('queue')) db.createObjectStore('queue', {keyPath: 'seq', autoIncrement: true});
        if (!db.objectStoreNames.contains('kv')) db.createObjectStore('kv');
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  }
  return dbPromise;
}

async function store(name, mode) {
  const db = await openDb();
  return db.transaction(name, mode).objectStore(name);
}

export async function kvGet(key) { return req((await store('kv', 'readonly')).get(key)); }
export async function kvSet(key, value) { return req((await store('kv', 'readwrite')).put(value, key)); }
export async function kvDel(key) { return req((await store('kv', 'readwrite')).delete(key)); }

export async function items() { return req((await store('queue', 'readonly')).getAll()); }
async function put(item) { return req((await store('queue', 'readwrite')).put(item)); }
export async function remove(seq) { return req((await store('queue', 'readwrite')).delete(seq)); }
export async function clear() { return req((await store('queue', 'readwrite')).clear()); }

export function newKey() {
  return (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`);
}

/** Store one request: {kind, label, assignment, action, url, method, body (string or Blob), type}. */
export async function enqueue(item) {
  const full = {key: newKey(), method: 'POST', created_at: new Date().toISOString(), attempts: 0, next_at: 0,
    state: 'pending', error: null, ...item};
  full.seq = await put(full);
  return full;
}

export class Sender extends EventTarget {
  constructor(getToken, getUser = async () => null) {
    super();
    this.getToken = getToken;
    this.getUser = getUser;  // items are sent only under the session of the user who took them
    this.timer = null;
    this.running = false;
    this.paused = false;
    this.log = [];  // what was sent, in order (the tests read it)
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, {detail})); }

  async flush() {
    if (navigator.locks) return navigator.locks.request('gridmap-queue', () => this.run());
    return this.run();
  }

  schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), Math.max(ms, 50));
  }

  async run() {
    if (this.running) return;
    this.running = true;
    try {
      for (;;) {
        const user = await this.getUser();
        const all = (await items()).filter((i) => i.state === 'pending' && (!i.user || i.user === user))
          .sort((a, b) => a.seq - b.seq);
        this.emit('change');
        if (!all.length || this.paused) return;
        const item = all[0];
        const wait = item.next_at - Date.now();
        if (wait > 0) { this.schedule(wait); return; }
        const outcome = await this.send(item);
        if (outcome === 'stop') return;
      }
    } finally {
      this.running = false;
      this.emit('change');
    }
  }

  async send(item) {
    const token = await this.getToken();
    if (!token) { this.paused = true; this.emit('auth', {item}); return 'stop'; }
    const headers = {'Authorization': `Bearer ${token}`, 'Idempotency-Key': item.key};
    if (item.type) headers['Content-Type'] = item.type;
    let response;
    try {
      response = await fetch(item.url, {method: item.method, headers, body: item.body, cache: 'no-store'});
    } catch (err) {
      return this.retry(item, null, String(err));
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    this.log.push({seq: item.seq, key: item.key, url: item.url, status: response.status,
      body: typeof item.body === 'string' ? item.body : null,
      replayed: response.headers.get('Idempotent-Replayed') === 'true'});
    if (response.ok) {
      await remove(item.seq);
      this.emit('applied', {item, body, replayed: response.headers.get('Idempotent-Replayed') === 'true'});
      return 'next';
    }
    if (response.status === 401) {
      this.paused = true;
      this.emit('auth', {item, body});
      return 'stop';
    }
    if (response.status === 408 || response.status === 429 || response.status >= 500) {
      const after = Number(response.headers.get('Retry-After') || 0) * 1000;
      return this.retry(item, after, body && body.message);
    }
    item.state = 'refused';
    item.error = body ? {message: body.message, fix: body.fix, status: response.status} : {status: response.status};
    await put(item);
    this.emit('refused', {item, body});
    return 'next';
  }

  async retry(item, afterMs, reason) {
    item.attempts += 1;
    const backoff = Math.min(2 ** item.attempts * 1000, 30000);
    item.next_at = Date.now() + Math.max(backoff, afterMs || 0);
    item.last_error = reason || null;
    await put(item);
    this.emit('retry', {item});
    this.schedule(item.next_at - Date.now());
    return 'stop';
  }
}
