/* gridmap unit inbox: the events at the unit's rung with each rung's clock (entered, due, time left, who took
 * it), refreshed live. Acting on an event goes through the API (POST /v1/units/{code}/inbox/{id}/{action}). */
(function () {
  'use strict';
  const {cfg, $, esc, live} = window.gmScreen;  // screen.js
  const time = (t) => (t ? String(t).replace('T', ' ').slice(5, 16) : '–');
  function left(s) {
    if (s === null || s === undefined) return '–';
    const a = Math.abs(s), txt = a < 3600 ? `${Math.round(a / 60)}m` : a < 86400 ? `${(a / 3600).toFixed(1)}h` : `${(a / 86400).toFixed(1)}d`;
    return s < 0 ? `超时 -${txt}` : txt;
  }
  function render(d) {
    $('gm-unit-name').textContent = `${d.unit.name_zh} · ${d.unit.name} (${d.unit.code})`;
    $('gm-totals').innerHTML = `<div class="fig"><span class="v" id="gm-open">${esc(d.open)}</span><span class="k">待办 open</span></div>
      <div class="fig"><span class="v">${esc(d.overdue)}</span><span class="k">超时 overdue</span></div>
      <div class="fig"><span class="v">${esc(d.taken)}</span><span class="k">已承办 taken</span></div>`;
    $('gm-inbox-body').innerHTML = d.events.map((i) => {
      const e = i.event, c = i.clock;
      const cls = c.left_at ? 'left' : (c.overdue ? 'overdue' : '');
      return `<tr class="${cls}" data-id="${esc(e.id)}"><td>${esc(e.code)}<br><small>${esc(e.title)}</small></td>
        <td>${esc(e.category)}</td><td>${esc(e.status)}${c.left_at ? ` · ${esc(c.left_how)}` : ''}</td>
        <td>${esc(c.rung)} ${esc(e.escalation.handler_zh)}</td><td>${time(c.entered_at)}</td><td>${time(c.due_at)}</td>
        <td>${c.left_at ? '–' : left(c.remaining_s)}</td><td>${esc(c.taken_by)}</td>
        <td>${i.case ? esc(i.case.code) : ''}</td></tr>`;
    }).join('') || '<tr><td colspan="9">收件箱为空 the inbox is empty</td></tr>';
    $('gm-status').textContent = `as of ${String(d.now).replace('T', ' ').slice(0, 19)}`;
  }
  live(render);
}());
