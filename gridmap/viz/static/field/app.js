// The field app for grid workers and volunteers: sign in (a device session), go on duty (position shared every
// 30 s and at every action while the app is open), receive the nearest assignments live (sound, vibration, a
// system notification when the page is hidden), see the route on the street's own map, and answer: accept,
// decline with a reason, arrive, resolve with a note and up to 4 photos, hand up. Every answer goes through the
// offline queue (queue.js): stored first, sent in order, applied once; what waits is shown, what the server
// refuses is shown with its reason.
import {Feed} from './feed.js';
import {apply as applyI18n, getLang, setLang, t} from './i18n.js';
import {MapView} from './map.js';
import {enqueue, items as queueItems, kvDel, kvGet, kvSet, remove as removeItem, Sender} from './queue.js';

const cfg = JSON.parse(document.getElementById('gm-config').textContent);
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v == null ? '' : v).replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
const PHOTO_TYPES = ['image/jpeg', 'image/png', 'image/webp'];
const MAX_PHOTO = 8000000;

const state = {
  token: null, user: null, context: null, assignments: new Map(), events: new Map(), history: [], queue: [],
  seenOffers: new Set(), duty: false, fix: null, lastSent: null, geoWatch: null, posTimer: null, mapLoaded: false,
  banner: null, ready: false, feedMode: null, alerts: 0, errors: [],
};
const sender = new Sender(async () => state.token, async () => state.user);
const feed = new Feed(async () => state.token);
let map = null;
let audio = null;
let swReg = null;

// -- helpers -----------------------------------------------------------------------------------------------
async function api(path, {method = 'GET', body, headers = {}} = {}) {
  const h = {...headers};
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  if (body !== undefined && !(body instanceof Blob)) h['Content-Type'] = 'application/json';
  const r = await fetch(path, {method, headers: h, body: body === undefined || body instanceof Blob ? body : JSON.stringify(body),
    cache: 'no-store'});
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) { const err = new Error((data && data.message) || `HTTP ${r.status}`); err.status = r.status; err.body = data; throw err; }
  return data;
}

function toast(msg) {
  const el = $('toast');
  el.textContent = msg;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString(getLang() === 'en' ? 'en-GB' : 'zh-CN', {hour12: false}) : '');
const fmtDate = (iso) => (iso ? new Date(iso).toLocaleDateString(getLang() === 'en' ? 'en-GB' : 'zh-CN') : '');
function fmtLeft(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  const txt = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  return ms < 0 ? `${t('overdue')} ${txt}` : txt;
}
const catName = (code) => {
  const c = state.context && state.context.categories[code];
  return c ? (getLang() === 'en' ? c.name : `${c.name_zh} ${c.name}`) : code;
};

// -- sign-in -----------------------------------------------------------------------------------------------
function showLogin(message) {
  $('main-screen').hidden = true;
  $('login-screen').hidden = false;
  const err = $('login-error');
  err.textContent = message || '';
  err.hidden = !message;
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const out = await api('/v1/field/session', {method: 'POST', body: {username: $('username').value.trim(), password: $('password').value}});
    state.token = out.access_token;
    await kvSet('token', out.access_token);
    await kvSet('user', out.username);
    $('password').value = '';
    sender.paused = false;
    await start();
  } catch (err) {
    showLogin(err.body ? `${err.body.message}. ${err.body.fix || ''}` : String(err.message));
  }
});

$('logout').addEventListener('click', async () => {
  try { await api('/v1/auth/logout', {method: 'POST'}); } catch (e) { /* offline: the session ends by itself */ }
  stopDuty(false);
  feed.stop();
  state.token = null;
  await kvDel('token');
  showLogin();
});

function authLost(reason) {
  feed.stop();
  stopDuty(false);
  state.token = null;
  kvDel('token');
  showLogin(reason || t('signed_out'));
}

// -- start -------------------------------------------------------------------------------------------------
async function start() {
  state.user = await kvGet('user');
  try {
    state.context = await api('/v1/field/context');
    await kvSet('context', state.context);
  } catch (err) {
    if (err.status === 401 || err.status === 403) { authLost(err.body && err.body.message); return; }
    state.context = await kvGet('context');  // offline: what the app knew
    if (!state.context) { showLogin(String(err.message)); return; }
  }
  $('login-screen').hidden = true;
  $('main-screen').hidden = false;
  $('notice').textContent = state.context.notice;
  if (!map) {
    map = new MapView($('map'));
    $('zoom-in').onclick = () => map.zoom(1.5);
    $('zoom-out').onclick = () => map.zoom(1 / 1.5);
    $('locate').onclick = () => { if (state.fix) map.centerOn(state.fix.lon, state.fix.lat); };
  }
  if (state.context.extent) map.setExtent(state.context.extent);
  loadMap();
  state.duty = state.context.team && state.context.team.status !== 'off_duty';
  if (state.duty) startDuty(false);
  feed.start();
  sender.paused = false;
  sender.flush();
  loadHistory();
  render();
  state.ready = true;
}

async function loadMap() {
  try {
    const r = await fetch(state.context.map.url, {headers: {Authorization: `Bearer ${state.token}`}});
    if (!r.ok) throw new Error(`map ${r.status}`);
    map.setData(await r.json());
    state.mapLoaded = true;
    renderMap();
  } catch (err) {
    state.errors.push(`map: ${err}`);
  }
}

async function loadHistory() {
  try {
    state.history = await api('/v1/me/assignments?active=false&limit=50');
    for (const a of state.history) if (a.status === 'offered' || a.status === 'accepted') upsert(a, false);
  } catch (err) { /* offline: keep what we had */ }
  renderHistory();
}

// -- duty and position -------------------------------------------------------------------------------------
async function setTeamStatus(status) {
  await api(`/v1/teams/${encodeURIComponent(state.context.team.code)}/status`, {method: 'PUT', body: {status}});
}

$('duty').addEventListener('click', async () => {
  if (!audio && window.AudioContext) { audio = new AudioContext(); }  // a tap unlocks sound for later offers
  if (audio && audio.state === 'suspended') audio.resume();
  try {
    if (state.duty) { await setTeamStatus('off_duty'); stopDuty(true); } else {
      if (window.Notification && Notification.permission === 'default') Notification.requestPermission();
      await setTeamStatus('available');
      startDuty(true);
    }
  } catch (err) {
    toast(err.body ? `${err.body.message}. ${err.body.fix || ''}` : `${t('offline')}: ${err.message}`);
  }
  render();
});

function startDuty(announce) {
  state.duty = true;
  if (navigator.geolocation && state.geoWatch == null) {
    state.geoWatch = navigator.geolocation.watchPosition((pos) => {
      state.fix = {lon: pos.coords.longitude, lat: pos.coords.latitude, acc: pos.coords.accuracy, at: new Date(pos.timestamp).toISOString()};
      if (map) map.setMe(state.fix.lon, state.fix.lat, state.fix.acc);
      if (!state.lastSent) sendPosition();
      renderSharing();
    }, (err) => { state.errors.push(`geolocation: ${err.message}`); renderSharing(); }, {enableHighAccuracy: true, maximumAge: 10000});
  }
  clearInterval(state.posTimer);
  state.posTimer = setInterval(sendPosition, (state.context.position_every_s || 30) * 1000);
  if (announce) sendPosition();
  renderSharing();
}

function stopDuty(wasAsked) {
  state.duty = false;
  clearOfferNotifications();
  if (state.geoWatch != null && navigator.geolocation) navigator.geolocation.clearWatch(state.geoWatch);
  state.geoWatch = null;
  clearInterval(state.posTimer);
  state.posTimer = null;
  state.lastSent = null;
  if (wasAsked && map) map.setMe(null);
  renderSharing();
}

async function sendPosition() {
  if (!state.duty || !state.fix || !state.context || !state.context.team || !navigator.onLine) return;
  const f = state.fix;
  try {
    await api('/v1/teams/positions', {method: 'POST', body: {positions: [{team: state.context.team.code, lon: f.lon, lat: f.lat,
      at: new Date().toISOString(), accuracy_m: Math.round(f.acc * 10) / 10}]}});
    state.lastSent = new Date().toISOString();
  } catch (err) {
    state.errors.push(`position: ${err.message}`);
  }
  renderSharing();
}

// -- assignments -------------------------------------------------------------------------------------------
function upsert(a, alertIfNew = true) {
  state.assignments.set(a.id, a);
  if (a.status === 'offered' && !state.seenOffers.has(a.id)) {
    state.seenOffers.add(a.id);
    if (alertIfNew) alertOffer(a);
  } else if (a.status !== 'offered' && state.seenOffers.has(a.id)) {
    clearOfferNotifications(a.id);
  }
  if (!state.events.has(a.event.id) && (a.status === 'offered' || a.status === 'accepted')) loadEvent(a.event.id);
}

async function loadEvent(id) {
  try {
    state.events.set(id, await api(`/v1/events/${id}`));
    render();
  } catch (err) { /* offline or gone */ }
}

// A new offer alerts only while this phone is on duty: off duty, an offer that still reaches it (one that crossed
// the tap, or the command room put the team back on duty) is shown on the screen but makes no sound, no
// vibration and no notification. Page in front: a tone and a vibration. Page hidden (another app or tab in front,
// screen off): a system notification through the service worker, which vibrates itself (browsers ignore
// navigator.vibrate from a hidden page). The tone is made with Web Audio (no sound file to fetch or cache).
const VIBRATE = [300, 150, 300, 150, 300];
const TONE = [[0, 880], [0.35, 1175], [0.7, 880]];  // [start s, Hz]

function playTone() {
  try {
    if (!audio && window.AudioContext) audio = new AudioContext();
    if (!audio) return;
    const now = audio.currentTime;
    for (const [at, f] of TONE) {
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = f;
      g.gain.setValueAtTime(0.0001, now + at);
      g.gain.exponentialRampToValueAtTime(0.4, now + at + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, now + at + 0.3);
      o.connect(g).connect(audio.destination);
      o.start(now + at);
      o.stop(now + at + 0.32);
    }
  } catch (e) { state.errors.push(`sound: ${e}`); }
}

function notifyOffer(a) {
  if (!window.Notification || Notification.permission !== 'granted') return;
  const title = `${t('new_offer')}: ${catName(a.event.category)}`;
  const options = {body: `${a.event.address || ''} · ${t('eta')} ${Math.round((a.eta_s || 0) / 60)} min`, tag: `offer-${a.id}`,
    renotify: true, requireInteraction: true, vibrate: VIBRATE, data: {assignment: a.id}};
  if (swReg) {
    swReg.showNotification(title, options).catch((e) => state.errors.push(`notification: ${e}`));
  } else {
    try { new Notification(title, options); } catch (e) { state.errors.push(`notification: ${e}`); }
  }
}

// An offer's system notification goes away once the offer is no longer open (answered on this phone or by the
// command room, lapsed, given to another team), and every one of them when the phone goes off duty: an alert
// that outlives its offer is noise (Resgrid's users' complaint: alerts that don't stop).
function clearOfferNotifications(id = null) {
  if (!swReg || !swReg.getNotifications) return;
  swReg.getNotifications(id == null ? {} : {tag: `offer-${id}`})
    .then((shown) => shown.filter((n) => n.tag.startsWith('offer-')).forEach((n) => n.close()))
    .catch((e) => state.errors.push(`notification: ${e}`));
}

function alertOffer(a) {
  if (!state.duty) return;
  state.alerts += 1;
  playTone();
  if (document.visibilityState === 'hidden') notifyOffer(a);
  else if (navigator.vibrate) navigator.vibrate(VIBRATE);
}

feed.addEventListener('message', (e) => {
  const msg = e.detail;
  if (msg.type === 'snapshot') {
    const open = new Set(msg.assignments.map((a) => a.id));
    for (const [id, a] of state.assignments) {
      if ((a.status === 'offered' || a.status === 'accepted') && !open.has(id)) {
        state.assignments.delete(id);
        clearOfferNotifications(id);
      }
    }
    for (const a of msg.assignments) upsert(a);
    loadHistory();
  } else {
    upsert(msg.assignment);
    if (!['offered', 'accepted'].includes(msg.assignment.status)) loadHistory();
  }
  render();
});
feed.addEventListener('status', (e) => { state.feedMode = e.detail.connected ? e.detail.mode : null; renderBar(); });
feed.addEventListener('auth', () => authLost());

const NEXT = {accept: 'accepted', arrive: 'on_site', resolve: 'done', decline: 'done', hand_up: 'done'};
function queued(aid) { return state.queue.filter((q) => q.assignment === aid && q.action && q.state === 'pending'); }
function phaseOf(a) {
  let p = a.status === 'offered' ? 'offered' : a.status === 'accepted' ? (a.event.status === 'on_site' ? 'on_site' : 'accepted') : 'done';
  for (const q of queued(a.id)) p = NEXT[q.action] || p;
  return p;
}
function current() {  // the open assignment, or one whose last answer still waits to be sent
  const open = [...state.assignments.values()].filter((a) => phaseOf(a) !== 'done' || queued(a.id).length)
    .sort((a, b) => b.id - a.id);
  return open[0] || null;
}

// -- answers -----------------------------------------------------------------------------------------------
let dialogFor = null;

function openForm(a, action) {
  dialogFor = {a, action};
  $('form-title').textContent = t(`${action}_title`);
  $('reason-row').hidden = action !== 'decline';
  $('photo-row').hidden = !(action === 'resolve' || action === 'hand_up');
  $('note').value = '';
  $('photos').value = '';
  $('thumbs').innerHTML = '';
  $('form-error').hidden = true;
  applyI18n($('form-dialog'));
  $('form-dialog').showModal();
}

function checkPhotos(files) {
  if (files.length > 4) return t('photo_many');
  for (const f of files) {
    if (!PHOTO_TYPES.includes(f.type)) return `${f.name}: ${t('photo_type')}`;
    if (f.size > MAX_PHOTO) return `${f.name}: > 8 MB`;
  }
  return null;
}

$('photos').addEventListener('change', () => {
  const files = [...$('photos').files];
  const problem = checkPhotos(files);
  $('form-error').textContent = problem || '';
  $('form-error').hidden = !problem;
  $('thumbs').innerHTML = '';
  for (const f of files.slice(0, 4)) {
    const img = document.createElement('img');
    img.src = URL.createObjectURL(f);
    img.alt = f.name;
    $('thumbs').appendChild(img);
  }
});
$('form-cancel').addEventListener('click', () => $('form-dialog').close());
$('action-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const files = [...$('photos').files];
  const problem = $('photo-row').hidden ? null : checkPhotos(files);
  if (problem) { $('form-error').textContent = problem; $('form-error').hidden = false; return; }
  const {a, action} = dialogFor;
  let note = $('note').value.trim();
  if (action === 'decline') note = `${$('reason').selectedOptions[0].textContent}${note ? `: ${note}` : ''}`;
  $('form-dialog').close();
  await act(a, action, note, $('photo-row').hidden ? [] : files);
});

async function act(a, action, note, files = []) {
  const where = state.fix ? {lon: state.fix.lon, lat: state.fix.lat} : {};
  for (const f of files) {
    await enqueue({kind: 'photo', user: state.user, assignment: a.id, url: `/v1/assignments/${a.id}/photos`, body: f, type: f.type,
      label: `${t('photos').split(/[（(]/)[0]} ${f.name}`});
  }
  await enqueue({kind: 'action', user: state.user, assignment: a.id, action, url: `/v1/assignments/${a.id}/${action.replace('_', '-')}`,
    body: JSON.stringify({note: note || null, ...where}), type: 'application/json', label: `${t(action)} #${a.id}`});
  state.queue = await queueItems();
  toast(navigator.onLine ? t('applied') : t('queued'));
  if (swReg && swReg.sync) swReg.sync.register('gridmap-queue').catch(() => undefined);
  sendPosition();
  render();
  sender.flush();
}

sender.addEventListener('change', async () => { state.queue = await queueItems(); render(); });
sender.addEventListener('applied', (e) => {
  const body = e.detail.body;
  if (body && body.assignment) { upsert(body.assignment, false); if (body.event) state.events.set(body.event.id, body.event); }
  render();
});
sender.addEventListener('refused', (e) => {
  const {item, body} = e.detail;
  state.banner = {kind: 'refused', text: `${t('refused')} (${item.label}): ${body ? body.message : item.error.status}${body && body.fix ? ` — ${body.fix}` : ''}`};
  loadHistory();
  render();
});
sender.addEventListener('auth', () => authLost(t('signed_out')));

// -- rendering ---------------------------------------------------------------------------------------------
function renderBar() {
  const net = $('net');
  const online = navigator.onLine;
  net.textContent = online ? (state.feedMode ? t(state.feedMode === 'ws' ? 'feed_ws' : 'feed_sse') : t('feed_off')) : t('offline');
  net.className = `pill ${online && state.feedMode ? 'ok' : 'warn'}`;
  const pending = state.queue.filter((q) => q.state === 'pending').length;
  const pill = $('queue-pill');
  pill.hidden = pending === 0;
  pill.textContent = t('waiting', {n: pending});
  $('lang').textContent = getLang() === 'en' ? '中文' : 'EN';
}

function renderSharing() {
  const el = $('sharing');
  el.hidden = false;
  if (!state.duty) { el.textContent = t('not_sharing'); el.className = 'sharing off'; return; }
  el.className = 'sharing on';
  el.textContent = state.fix ? `${t('sharing', {acc: Math.round(state.fix.acc)})}${state.lastSent ? ` · ${fmtTime(state.lastSent)}` : ''}`
    : `${t('sharing', {acc: '?'})} · ${t('no_location')}`;
  const duty = $('duty');
  duty.textContent = t('on_duty');
}

function renderMap() {
  if (!map) return;
  const a = current();
  if (a) {
    map.setRoute(a.route, [a.event.lon, a.event.lat]);
    if (a.route && a.route.coordinates) map.fitLonLat(a.route.coordinates);
    else map.fitLonLat([[a.event.lon, a.event.lat]]);
  } else {
    map.setRoute(null, null);
  }
}

function taskHtml(a, phase) {
  const ev = state.events.get(a.event.id);
  const said = ev ? [ev.title, ev.description].filter(Boolean).join(' — ') : a.event.title;
  const due = ev && ev.escalation && ev.escalation.due_at;
  const respond = phase === 'offered' && a.respond_by;
  const pend = queued(a.id).length ? ` <span class="tag">${t('pending_tag')}</span>` : '';
  const place = [a.event.address, ev && ev.location && ev.location.place_code].filter(Boolean).join(' · ');
  const btn = (action, cls = '') => `<button type="button" class="big ${cls}" data-act="${action}">${t(action)}</button>`;
  const buttons = phase === 'offered' ? btn('accept', 'primary') + btn('decline') + btn('hand_up')
    : phase === 'accepted' ? btn('arrive', 'primary') + btn('hand_up')
      : phase === 'on_site' ? btn('resolve', 'primary') + btn('hand_up') : '';
  return `<div class="head"><b>${esc(catName(a.event.category))}</b> <span class="sev sev${esc(a.event.severity)}">S${esc(a.event.severity)}</span>
    <span class="status">${t(`status_${phase}`)}${pend}</span></div>
    <div class="addr">${esc(place)}</div>
    <div class="meta">${t('eta')} <b>${Math.round((a.eta_s || 0) / 60)} min</b> · ${t('distance')} <b>${Math.round(a.distance_m || 0)} m</b>
      ${respond ? ` · ${t('respond_in')} <b class="countdown" data-limit="respond" data-countdown="${esc(a.respond_by)}"></b>` : ''}
      ${due ? ` · ${t('due_in')} <b class="countdown" data-limit="rung" data-countdown="${esc(due)}"></b>` : ''}</div>
    ${said ? `<div class="said"><small>${t('reporter_said')}:</small> ${esc(said)}</div>` : ''}
    <div class="buttons">${buttons}</div>`;
}

function render() {
  if (!state.context) return;
  renderBar();
  renderSharing();
  $('duty').textContent = state.duty ? t('on_duty') : t('off_duty');
  $('duty').className = `big ${state.duty ? 'on' : ''}`;
  const banner = $('banner');
  banner.hidden = !state.banner;
  if (state.banner) {
    banner.innerHTML = `${esc(state.banner.text)} <button type="button" id="banner-x">${t('dismiss')}</button>`;
    $('banner-x').onclick = () => { state.banner = null; render(); };
  }
  const a = current();
  const phase = a ? phaseOf(a) : null;
  $('offer').hidden = !(a && phase === 'offered');
  $('task').hidden = !(a && phase !== 'offered');
  $('idle').hidden = !!a;
  $('idle').textContent = state.duty ? t('idle') : t('idle_off');
  const card = phase === 'offered' ? $('offer') : $('task');
  if (a) {
    card.innerHTML = (phase === 'offered' ? `<div class="new">${t('new_offer')}</div>` : '') + taskHtml(a, phase);
    for (const b of card.querySelectorAll('[data-act]')) {
      b.onclick = () => {
        const action = b.dataset.act;
        if (action === 'accept' || action === 'arrive') act(a, action, null);
        else openForm(a, action);
      };
    }
  }
  const list = $('queue-list');
  const shown = state.queue.filter((q) => q.user === state.user || !q.user);
  list.hidden = shown.length === 0;
  list.innerHTML = shown.map((q) => `<div class="q ${q.state}">${esc(q.label)} · ${q.state === 'refused'
    ? `<b>${t('refused')}</b>: ${esc(q.error && q.error.message)} <button type="button" data-drop="${q.seq}">${t('dismiss')}</button>`
    : t('pending_tag')}</div>`).join('');
  for (const b of list.querySelectorAll('[data-drop]')) b.onclick = async () => { await removeItem(Number(b.dataset.drop)); state.queue = await queueItems(); render(); };
  renderMap();
  tick();
}

function renderHistory() {
  const today = new Date().toDateString();
  $('history-list').innerHTML = state.history.map((a) => {
    const day = new Date(a.offered_at).toDateString() === today ? fmtTime(a.offered_at) : `${fmtDate(a.offered_at)} ${fmtTime(a.offered_at)}`;
    return `<li><b>${esc(catName(a.event.category))}</b> · ${esc(a.event.code)} · ${esc(a.status)}<br><small>${day}${a.responded_at ? ` → ${fmtTime(a.responded_at)}` : ''} · ${esc(a.event.address || '')}</small></li>`;
  }).join('');
}

function tick() {  // every second: the time left to answer, and the rung's time limit; past it, overdue in red
  for (const el of document.querySelectorAll('[data-countdown]')) {
    const left = new Date(el.dataset.countdown) - Date.now();
    el.textContent = fmtLeft(left);
    el.classList.toggle('overdue', left < 0);
  }
}
setInterval(tick, 1000);

// -- wiring ------------------------------------------------------------------------------------------------
$('lang').addEventListener('click', () => { setLang(getLang() === 'en' ? 'zh' : 'en'); render(); renderHistory(); });
$('queue-pill').addEventListener('click', () => $('queue-list').scrollIntoView());
window.addEventListener('online', () => { renderBar(); sender.flush(); feed.now(); loadHistory(); });
window.addEventListener('offline', () => renderBar());
document.addEventListener('visibilitychange', () => { if (!document.hidden) { feed.now(); sender.flush(); sendPosition(); } });

async function boot() {
  applyI18n();
  setLang(getLang());
  if ('serviceWorker' in navigator) {
    try {
      swReg = await navigator.serviceWorker.register(cfg.sw, {scope: `${cfg.base}/`});
      navigator.serviceWorker.addEventListener('message', (e) => { if (e.data && e.data.type === 'flush') sender.flush(); });
    } catch (err) { state.errors.push(`service worker: ${err}`); }
  }
  state.token = (await kvGet('token')) || null;
  state.queue = await queueItems();
  if (state.token) await start(); else showLogin();
}

window.gridmapField = {state, sender, feed, get map() { return map; }, version: cfg.version, flush: () => sender.flush()};
boot();
