/* gridmap levels of command: the areas one level below (a district's streets, a street's communities)
 * side by side with their figures, refreshed live; each drills down to its map and to its own areas.
 * Reads only the app's own endpoints (the session is an HttpOnly cookie this script never sees). */
(function () {
  'use strict';
  const {cfg, $, esc, live} = window.gmScreen;  // screen.js
  const pct = (v) => (v === null || v === undefined ? '–' : `${(100 * v).toFixed(1)}%`);
  const mins = (v) => (v === null || v === undefined ? '–' : `${Number(v).toFixed(1)} min`);
  const LEVEL = {district: '区 district', street: '街道 street', community: '社区 community', grid: '网格 grid'};
  function card(a, below) {
    const map = below === 'grid' ? '' : `<a class="gm-map" href="${esc(cfg.mapUrl)}?area=${encodeURIComponent(a.code)}">地图 map</a>`;
    const down = below === 'street' ? `<a class="gm-drill" href="${esc(cfg.selfUrl)}?area=${encodeURIComponent(a.code)}">社区 communities ↓</a>` : '';
    return `<article class="gm-area${a.overdue ? ' gm-overdue' : ''}" data-code="${esc(a.code)}">
      <h2>${below === 'grid' ? esc(a.name_zh) : `<a class="gm-name" href="${esc(cfg.mapUrl)}?area=${encodeURIComponent(a.code)}">${esc(a.name_zh)}</a>`}
        <small>${esc(a.code)}</small></h2>
      <div>${esc(a.name)} · 人口 population ${esc(a.population)}</div>
      <div class="gm-figs">
        <div><b class="gm-open">${esc(a.open)}</b><span>待办 open</span></div>
        <div><b class="gm-overdue-n">${esc(a.overdue)}</b><span>超时 overdue</span></div>
        <div><b class="gm-response">${mins(a.response_p50_min)}</b><span>响应中位 response p50</span></div>
        <div><b class="gm-closure">${pct(a.closure_rate)}</b><span>闭环率 closure (${esc(cfg.periodDays)} d)</span></div>
        <div><b class="gm-safety">${a.safety_index === null || a.safety_index === undefined ? '–' : esc(a.safety_index)}</b>
          <span>平安指数 safety ${esc(a.safety_month || '')}</span></div>
        <div><b>${esc(a.reported_today)}</b><span>今日上报 today</span></div>
      </div>
      <div class="gm-links">${map} ${down}</div></article>`;
  }
  function render(d) {
    const area = d.area;
    $('gm-title').textContent = `${LEVEL[area.level] || area.level} ${area.name_zh || area.code} · ${LEVEL[d.level_below]}`;
    const up = cfg.up ? `<a id="gm-up" href="${esc(cfg.up.url)}">↑ ${esc(cfg.up.label)}</a> · ` : '';
    $('gm-crumbs').innerHTML = `${up}<a href="${esc(cfg.mapUrl)}?area=${encodeURIComponent(area.code)}">${esc(area.name_zh)} 地图 map</a>`;
    const t = d.totals;
    $('gm-totals').innerHTML = `<div class="fig"><span class="v">${esc(t.open)}</span><span class="k">待办 open</span></div>
      <div class="fig"><span class="v">${esc(t.overdue)}</span><span class="k">超时 overdue</span></div>
      <div class="fig"><span class="v">${pct(t.closure_rate)}</span><span class="k">闭环率 closure</span></div>
      <div class="fig"><span class="v">${esc(t.reported_today)}</span><span class="k">今日上报 today</span></div>`;
    $('gm-areas').innerHTML = d.areas.map((a) => card(a, d.level_below)).join('');
    $('gm-status').textContent = `as of ${String(d.at).replace('T', ' ').slice(0, 19)} · ${d.areas.length} ${LEVEL[d.level_below]}`;
  }
  live(render);
}());
