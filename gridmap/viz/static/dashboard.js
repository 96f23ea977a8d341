/* gridmap command-centre page: the pydeck deck (deck.gl JSON) + per-viewport data, live refresh, drill-down.
 *
 * Uses only the deck.gl bundle of the pydeck wheel (globals createDeck / updateDeck) and the app's own
 * endpoints. Exposes window.gridmap for tests and benchmarks (deck, ready(), setView(), project(), pick()).
 */
(function () {
  'use strict';
  const cfg = JSON.parse(document.getElementById('gm-config').textContent);
  const $ = (id) => document.getElementById(id);
  const state = {
    tick: 0, bbox: null, fetched: null, json: null, base: {}, deck: null, gridColor: cfg.gridColor || 'open_events',
    t0: performance.now(), drawnAt: null, drawn: false, bytes: 0, errors: [], selection: [], waiters: [],
  };

  // ---- session ------------------------------------------------------------------------------------------
  // The session is an HttpOnly cookie (this script never sees it) that every fetch of the app carries,
  // deck.gl's tile and layer loads included. When the app answers 401 (expired, logged out in another tab,
  // the key rotated), stop and go back to the login form, which brings the user back here afterwards.
  let sessionLost = false;
  function onSessionLost() {
    if (sessionLost) return;
    sessionLost = true;
    state.stopped = true;
    $('gm-status').textContent = 'session ended: back to the login form …';
    const next = window.location.pathname + window.location.search;
    window.location.replace(`${cfg.loginUrl}?expired=1&next=${encodeURIComponent(next)}`);
  }
  const appFetch = window.fetch.bind(window);
  window.fetch = async function (input, init) {
    const r = await appFetch(input, init);
    if (r.status === 401) {
      const url = new URL(typeof input === 'string' ? input : input.url, window.location.href);
      if (url.origin === window.location.origin) onSessionLost();
    }
    return r;
  };

  // ---- helpers ------------------------------------------------------------------------------------------
  function withParams(url, params) {
    const u = new URL(url, window.location.origin);
    if (cfg.area) u.searchParams.set('area', cfg.area);  // the area drilled into: every read of the page is confined to it
    for (const [k, v] of Object.entries(params)) { if (v !== null && v !== undefined) u.searchParams.set(k, v); }
    return u.pathname + u.search;
  }
  async function getJSON(url) {
    const r = await fetch(url, {headers: {Accept: 'application/json'}});
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }
  function esc(v) {
    return String(v === null || v === undefined ? '–' : v)
      .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  }
  function fmtAge(s) {
    if (s === null || s === undefined) return '–';
    s = Math.max(0, Math.round(s));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.round(s / 60)}m`;
    if (s < 86400) return `${(s / 3600).toFixed(1)}h`;
    return `${(s / 86400).toFixed(1)}d`;
  }
  function fmtEta(s) { return s === null || s === undefined ? '–' : `${(s / 60).toFixed(1)} min`; }
  function fill(template, obj) {
    const props = (obj && obj.properties) || {};
    return template.replace(/{([^}]+)}/g, (_, k) => esc(k in (obj || {}) ? obj[k] : props[k]));
  }
  function dataParams(id) {
    const p = {};
    if (cfg.viewport.includes(id) && state.bbox) p.bbox = state.bbox.map((v) => v.toFixed(4)).join(',');
    if (cfg.live.includes(id)) p.v = state.tick;
    return p;
  }
  function layerJson(l) {
    const base = state.base[l.id];
    if (l.id === 'selection') return Object.assign({}, l, {data: state.selection});
    if (!base) return l;
    return Object.assign({}, l, {data: withParams(base, dataParams(l.id))});
  }
  // Convert some layers' JSON with the bundle's converter, keep every other layer instance as it is.
  function convert(layersJson) {
    let out = null;
    window.updateDeck({layers: layersJson}, {setProps: (p) => { out = p.layers; }});
    return out || [];
  }
  function replaceLayers(ids) {
    const fresh = convert(state.json.layers.filter((l) => ids.includes(l.id)).map(layerJson));
    const byId = Object.fromEntries(fresh.map((l) => [l.id, l]));
    state.drawn = false;
    state.deck.setProps({layers: state.deck.props.layers.map((l) => byId[l.id] || l)});
  }

  // ---- readiness (tests and the benchmark read these) ---------------------------------------------------
  function allLoaded() {
    const d = state.deck;
    if (!d || !d.layerManager) return false;
    const layers = d.props.layers.filter((l) => l && l.id !== 'selection');
    return layers.length === state.json.layers.length - 1 && layers.every((l) => l.isLoaded);
  }
  function onAfterRender() {
    if (!state.drawn && allLoaded()) {
      state.drawn = true;
      if (state.drawnAt === null) {
        state.drawnAt = performance.now();
        document.body.dataset.drawn = '1';
        $('gm-status').textContent = `all layers drawn in ${((state.drawnAt - state.t0) / 1000).toFixed(2)} s`;
      }
      const w = state.waiters; state.waiters = [];
      w.forEach((f) => f());
    }
  }
  function whenDrawn() {
    return new Promise((resolve) => { state.drawn = false; state.waiters.push(resolve); state.deck.redraw(true); });
  }

  // ---- viewport -----------------------------------------------------------------------------------------
  function viewportBbox() {
    const vp = state.deck.getViewports()[0];
    if (!vp) return null;
    const pts = [[0, 0], [vp.width, 0], [0, vp.height], [vp.width, vp.height]].map((p) => vp.unproject(p));
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    let b = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
    const e = cfg.extent;  // never ask for more than the street (with a margin)
    const mx = (e[2] - e[0]) * 0.25, my = (e[3] - e[1]) * 0.25;
    b = [Math.max(b[0], e[0] - mx), Math.max(b[1], e[1] - my), Math.min(b[2], e[2] + mx), Math.min(b[3], e[3] + my)];
    if (!(b[0] < b[2] && b[1] < b[3])) return null;
    return b;
  }
  let vpTimer = null;
  function onViewChange() {
    clearTimeout(vpTimer);
    vpTimer = setTimeout(() => {
      const b = viewportBbox();
      if (!b) return;
      const f = state.fetched;
      if (f && b[0] >= f[0] && b[1] >= f[1] && b[2] <= f[2] && b[3] <= f[3]) return;  // still inside
      const dx = (b[2] - b[0]) * 0.2, dy = (b[3] - b[1]) * 0.2;  // fetch a margin: small pans need nothing
      state.bbox = [b[0] - dx, b[1] - dy, b[2] + dx, b[3] + dy];
      state.fetched = state.bbox;
      replaceLayers(cfg.viewport);
    }, 250);
  }

  // ---- drill-down ---------------------------------------------------------------------------------------
  function showDetail(html, selection) {
    const el = $('gm-detail');
    el.innerHTML = `<span class="close" title="close">✕</span>${html}`;
    el.hidden = false;
    el.querySelector('.close').onclick = () => { el.hidden = true; setSelection([]); };
    setSelection(selection || []);
  }
  function setSelection(items) {
    state.selection = items;
    replaceLayers(['selection']);
  }
  async function openBuilding(code) {
    const b = await getJSON(withParams(`${cfg.api}/buildings/${encodeURIComponent(code)}`, {at: cfg.at}));
    const biz = b.businesses.length
      ? `<ul>${b.businesses.map((z) => `<li>${esc(z.name)} <small>(${esc(z.kind)}${z.is_key_place ? ', key place 重点场所' : ''})</small></li>`).join('')}</ul>`
      : '<div>no businesses 无商户</div>';
    const more = b.businesses_total > b.businesses.length ? `<div>… ${b.businesses_total - b.businesses.length} more</div>` : '';
    const n = b.nearest_responder;
    const resp = n ? `<div>nearest 最近 ${esc(n.kind)}: <b>${esc(n.name || n.code)}</b>, ETA <b class="gm-eta">${fmtEta(n.eta_s)}</b> (${Math.round(n.distance_m)} m)</div>`
      : '<div>no in-service micro fire station/truck within reach</div>';
    showDetail(`<h3>楼栋 ${esc(b.code)}</h3><div>${esc(b.address)}</div>
      <div>${esc(b.floors)} floors · ${esc(b.use)} · grid ${esc(b.grid_code)}</div>
      <div>居民 residents: <b id="gm-detail-residents">${esc(b.residents)}</b> in ${esc(b.households)} households</div>
      <h4>商户 businesses (${esc(b.businesses_total)})</h4>${biz}${more}${resp}`,
    n && n.path ? [{path: n.path, kind: 'responder'}] : []);
  }
  async function openEvent(id) {
    const e = await getJSON(withParams(`${cfg.api}/events/${id}`, {at: cfg.at}));
    const tl = e.timeline.map((t) => `<li>${esc(t.at.replace('T', ' ').slice(0, 19))} · ${esc(t.what)}</li>`).join('');
    const a = e.assignment;
    showDetail(`<h3>事件 ${esc(e.code)} <span class="badge">${esc(e.status)}</span></h3>
      <div>${esc(e.category_zh)} ${esc(e.category)} · severity ${esc(e.severity)} · ${e.overdue ? '<b>OVERDUE 超时</b>' : 'on time'}</div>
      <div>${esc(e.title)}</div>
      <div>team 队伍: <b id="gm-detail-team">${esc(e.team)}</b>${a ? ` · ETA ${fmtEta(a.eta_s)} (${esc(a.status)})` : ''}</div>
      <h4>timeline</h4><ul>${tl}</ul><div id="gm-detail-photos"></div>`,
    a && a.path ? [{path: a.path, kind: 'route'}] : []);
    if (['admin', 'operator'].includes(cfg.user.role)) await showPhotos(id);  // planners never see photos (403)
  }
  async function showPhotos(id) {
    const photos = await getJSON(`${cfg.api}/events/${id}/photos`);
    const el = $('gm-detail-photos');
    if (!el || !photos.length) return;
    el.innerHTML = `<h4>照片 photos (${photos.length})</h4><div class="thumbs">${photos.map((p) =>
      `<a href="${esc(p.url)}" target="_blank" rel="noopener"><img src="${esc(p.thumb_url)}" alt="photo ${esc(p.id)}" data-photo="${esc(p.id)}" title="${esc(p.source)} · ${esc(p.action || 'pending')}"></a>`).join('')}</div>`;
  }
  async function openTeam(code) {
    const t = await getJSON(withParams(`${cfg.api}/teams/${encodeURIComponent(code)}`, {at: cfg.at}));
    const a = t.assignment;
    const cur = a ? `<div>current 当前任务: event <b id="gm-detail-event">${esc(a.event_code)}</b> (${esc(a.category)}, ${esc(a.event_status)})${a.eta_s != null ? `, ETA ${fmtEta(a.eta_s)}` : ''}</div>`
      : '<div>no current assignment 无任务</div>';
    showDetail(`<h3>队伍 ${esc(t.name)} (${esc(t.code)})</h3>
      <div>${esc(t.kind)} · <b>${esc(t.state)}</b> · ${esc(t.members)} members · position ${fmtAge(t.age_s)} old</div>${cur}`,
    a && a.path ? [{path: a.path, kind: 'route'}] : []);
  }
  function onClick(info) {
    if (!info || !info.picked || !info.object || !info.layer) return;
    const o = info.object, p = o.properties || {};
    const id = info.layer.id;
    const act = id === 'buildings' ? openBuilding(p.code)
      : id === 'events' ? openEvent(o.id)
        : id === 'teams' ? openTeam(o.code)
          : id === 'routes' ? openEvent(o.event_id)
            : Promise.resolve(showDetail(fill(cfg.tooltips[id] || '', o)));
    act.catch((err) => { state.errors.push(String(err)); });
  }
  function getTooltip(info) {
    if (!info.picked || !info.object || !info.layer) return null;
    const t = cfg.tooltips[info.layer.id];
    return t ? {html: fill(t, info.object)} : null;
  }

  // ---- live panel ---------------------------------------------------------------------------------------
  async function refreshPanel() {
    const s = await getJSON(withParams(`${cfg.api}/summary`, {at: cfg.at, v: state.tick}));
    const f = s.figures;
    $('fig-open').textContent = f.open_events;
    $('fig-median').textContent = f.median_response_s_today === null ? '–' : fmtEta(f.median_response_s_today);
    $('fig-closure').textContent = f.closure_rate === null ? '–' : `${(100 * f.closure_rate).toFixed(1)}%`;
    $('gm-clock').textContent = `as of ${s.now.replace('T', ' ').slice(0, 19)}${cfg.at ? ' (replay)' : ''}`;
    $('gm-events-count').textContent = `(${f.open_events})`;
    $('gm-events-body').innerHTML = s.events.map((e) => `<tr data-id="${e.id}" class="${e.overdue ? 'overdue' : ''}">
      <td>${esc(e.code)}<br><small>${esc(e.category_zh)} · sev ${esc(e.severity)}</small></td><td>${esc(e.status)}</td>
      <td>${fmtAge(e.age_s)}</td><td>${e.overdue ? '<span class="badge">overdue</span>' : ''}</td></tr>`).join('');
    for (const tr of $('gm-events-body').querySelectorAll('tr')) {
      tr.onclick = () => openEvent(Number(tr.dataset.id)).catch((err) => state.errors.push(String(err)));
    }
  }
  function renderNav() {
    // the levels of command: up to the district screen, down to the communities of this street
    const nav = cfg.nav || {};
    const up = nav.up ? `<a id="gm-nav-up" href="${esc(nav.up.url)}">↑ ${esc(nav.up.label)}</a>` : '';
    const down = (nav.down || []).map((d) => `<a class="gm-nav-down" data-code="${esc(d.code)}" href="${esc(d.url)}">${esc(d.label)}</a>`).join(' ');
    $('gm-nav').innerHTML = `${nav.here ? `<b>${esc(nav.here)}</b> ` : ''}${up}${down ? `<div>${esc(nav.down_label || '')} ${down}</div>` : ''}`;
    $('gm-nav').hidden = !(up || down || nav.here);
  }
  function renderLegend() {
    // swatch colours through the CSSOM, not style="" attributes: the page's CSP allows no inline style
    $('gm-legend').innerHTML = Object.entries(cfg.legend).map(([k, items]) => `<div><b>${esc(k)}</b>: ${items.map(([n, c]) =>
      `<span class="sw" data-rgb="${c.slice(0, 3).map(Number).join(',')}"></span>${esc(n)}`).join(' ')}</div>`).join('');
    for (const sw of $('gm-legend').querySelectorAll('.sw')) sw.style.background = `rgb(${sw.dataset.rgb})`;
  }
  async function tick() {
    if (state.stopped) return;
    state.tick += 1;
    replaceLayers(cfg.live);
    try { await refreshPanel(); } catch (err) { state.errors.push(String(err)); }
  }
  async function switchGridColor(mode) {
    const j = await getJSON(withParams(cfg.deckUrl, {grid_color: mode, at: cfg.at}));
    const grid = j.layers.find((l) => l.id === 'grids');
    state.json.layers = state.json.layers.map((l) => (l.id === 'grids' ? grid : l));
    state.gridColor = mode;
    replaceLayers(['grids']);
  }

  // ---- start --------------------------------------------------------------------------------------------
  async function start() {
    state.json = await getJSON(withParams(cfg.deckUrl, {grid_color: state.gridColor, at: cfg.at}));
    for (const l of state.json.layers) { if (typeof l.data === 'string' && !l.data.includes('{z}')) state.base[l.id] = l.data; }
    // start with the whole street (plus the margin a pitched view shows): no refetch until the view leaves it
    const e = cfg.extent, mx = (e[2] - e[0]) * 0.25, my = (e[3] - e[1]) * 0.25;
    state.bbox = [e[0] - mx, e[1] - my, e[2] + mx, e[3] + my];
    state.fetched = state.bbox;
    const json = Object.assign({}, state.json, {layers: state.json.layers.map(layerJson)});
    // no multisampling: a software-rendered command-centre PC draws 2-4x faster without it
    json.deviceProps = {webgl: {antialias: false, preserveDrawingBuffer: false}};
    state.deck = window.createDeck({
      container: $('gm-map'), jsonInput: json, tooltip: false,
      handleEvent: (type) => { if (type === 'deck-view-state-change-event') onViewChange(); },
    });
    // Clicks are read from the DOM and picked here: deck.gl's tap recogniser drops a click whose
    // pointer-down picking pass takes longer than a tap (software-rendered command-room PCs).
    const map = $('gm-map');
    let down = null;
    map.addEventListener('pointerdown', (ev) => { down = [ev.clientX, ev.clientY]; });
    map.addEventListener('click', (ev) => {
      if (!down || Math.hypot(ev.clientX - down[0], ev.clientY - down[1]) > 4) return;  // a drag, not a click
      const r = map.getBoundingClientRect();
      onClick(state.deck.pickObject({x: ev.clientX - r.left, y: ev.clientY - r.top, radius: 3}));
    });
    state.deck.setProps({getTooltip, onAfterRender, onError: (e) => state.errors.push(String(e))});
    renderLegend();
    renderNav();
    for (const r of document.querySelectorAll('input[name=gridcolor]')) {
      r.onchange = () => switchGridColor(r.value).catch((err) => state.errors.push(String(err)));
    }
    refreshPanel().catch((err) => state.errors.push(String(err)));
    // live refresh starts once everything has been drawn (a refresh never delays the first picture)
    state.waiters.push(() => setInterval(tick, cfg.refreshMs));
  }

  window.gridmap = {
    state,
    openEvent,
    get deck() { return state.deck; },
    ready: () => state.drawnAt !== null,
    drawnMs: () => (state.drawnAt === null ? null : state.drawnAt - state.t0),
    allLoaded,
    whenDrawn,
    setView(v) {
      const vp = state.deck.getViewports()[0];
      const cur = {longitude: vp.longitude, latitude: vp.latitude, zoom: vp.zoom, pitch: vp.pitch, bearing: vp.bearing};
      const vs = Object.assign({}, state.json.initialViewState, cur, v, {transitionDuration: 0});
      state.drawn = false;
      state.deck.setProps({initialViewState: vs});
      onViewChange();
      return new Promise((resolve) => setTimeout(() => whenDrawn().then(resolve), 400));
    },
    project: (lonLatZ) => state.deck.getViewports()[0].project(lonLatZ),
    pick(x, y, layerIds, radius) {
      const info = state.deck.pickObject({x, y, radius: radius || 0, layerIds});
      if (!info || !info.object) return null;
      return {layer: info.layer.id, object: info.object.properties ? Object.assign({}, info.object.properties) : info.object};
    },
    // Codes of the buildings in the tiles the current view needs (loaded ones).
    buildingCodes() {
      const l = state.deck.props.layers.find((x) => x.id === 'buildings');
      const codes = new Set();
      const tiles = (l && l.state && l.state.tileset && l.state.tileset.selectedTiles) || [];
      for (const t of tiles) {
        const c = t.content;
        if (c && c.features) { for (const f of c.features) codes.add(f.properties.code); }
      }
      return Array.from(codes);
    },
    layerCounts() {
      const out = {};
      for (const l of state.deck.props.layers) {
        const d = l.props.data;
        out[l.id] = Array.isArray(d) ? d.length : (d && d.features ? d.features.length : null);
      }
      return out;
    },
    openBuilding, openEvent, openTeam, switchGridColor,
  };
  start().catch((err) => { state.errors.push(String(err)); $('gm-status').textContent = `error: ${err}`; });
}());
