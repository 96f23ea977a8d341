/* gridmap unit inbox: the events at the unit's rung with each rung's clock (entered, due, time left, who took
 * it), refreshed live; the member's actions on an open event (take it; settle it with a note), posted to the
 * app with the screen's session (POST cfg.actUrl/{id}/{action}?unit=, the same service as
 * POST /v1/units/{code}/inbox/{id}/{action}); and the unit's figures per rung. */
(function () {
  'use strict';
  const {cfg, $, esc, live, state} = window.gmScreen;  // screen.js
  const time = (t) => (t ? String(t).replace('T', ' ').slice(5, 16) : '–');
  const pct = (v) => (v === null || v === undefined ? '–' : `${Math.round(v * 1000) / 10}%`);
  function left(s) {
    if (s === null || s === undefined) return '–';
    const a = Math.abs(s), txt = a < 3600 ? `${Math.round(a / 60)}m` : a < 86400 ? `${(a / 3600).toFixed(1)}h` : `${(a / 86400).toFixed(1)}d`;
    return s < 0 ? `超时 -${txt}` : txt;
  }
  function actions(e, c) {
    if (c.left_at) return '';
    const take = c.taken_at ? '' : `<button type="button" class="gm-take" data-id="${esc(e.id)}">承办 take</button>`;
    const hint = cfg.mediation ? '调解协议 agreement' : '办结说明 note';
    return `${take}<input class="gm-note" data-id="${esc(e.id)}" maxlength="1000" placeholder="${hint}">` +
      `<button type="button" class="gm-settle" data-id="${esc(e.id)}">办结 settle</button>`;
  }
  function inbox(d) {
    // a re-render must not lose a note being typed: keep the inputs' text (and the focus) by event
    const notes = {};
    let focused = null;
    document.querySelectorAll('#gm-inbox-body input.gm-note').forEach((el) => {
      notes[el.dataset.id] = el.value;
      if (el === document.activeElement) focused = el.dataset.id;
    });
    $('gm-inbox-body').innerHTML = d.events.map((i) => {
      const e = i.event, c = i.clock;
      const cls = c.left_at ? 'left' : (c.overdue ? 'overdue' : '');
      return `<tr class="${cls}" data-id="${esc(e.id)}"><td>${esc(e.code)}<br><small>${esc(e.title)}</small></td>
        <td>${esc(e.category)}</td><td class="gm-status">${esc(e.status)}${c.left_at ? ` · ${esc(c.left_how)}` : ''}</td>
        <td>${esc(c.rung)} ${esc(e.escalation.handler_zh)}</td><td>${time(c.entered_at)}</td><td>${time(c.due_at)}</td>
        <td>${c.left_at ? '–' : left(c.remaining_s)}</td><td class="gm-taken-by">${esc(c.taken_by)}</td>
        <td>${i.case ? esc(i.case.code) : ''}</td><td class="gm-act">${actions(e, c)}</td></tr>`;
    }).join('') || '<tr><td colspan="10">收件箱为空 the inbox is empty</td></tr>';
    document.querySelectorAll('#gm-inbox-body input.gm-note').forEach((el) => {
      if (notes[el.dataset.id]) el.value = notes[el.dataset.id];
      if (focused === el.dataset.id) el.focus();
    });
  }
  function figures(f) {
    const row = (r, label, cls) => `<tr class="${cls}" data-key="${esc(r.key)}"><td>${esc(label)}</td>
      <td class="gm-f-events">${esc(r.events)}</td><td class="gm-f-open">${esc(r.open)}</td>
      <td class="gm-f-settled">${esc(r.settled)}</td><td class="gm-f-escalated">${esc(r.escalated)}</td>
      <td class="gm-f-referred">${esc(r.referred)}</td><td class="gm-f-returned">${esc(r.returned)}</td>
      <td class="gm-f-overdue">${esc(r.overdue)}</td><td class="gm-f-resolution">${pct(r.resolution_rate)}</td>
      <td class="gm-f-settle">${esc(r.settle_min.p50)} / ${esc(r.settle_min.p90)}</td></tr>`;
    const rows = f.rungs.map((r) => row(r, r.rung, 'gm-rung'));
    if (f.total) rows.push(row(f.total, '合计 all', 'gm-total'));
    $('gm-unit-figures-body').innerHTML = rows.join('') || '<tr><td colspan="10">尚无 none yet</td></tr>';
    const c = f.total && f.total.cases;
    $('gm-unit-cases').textContent = c ? `调解案件 cases ${c.cases}: 协议 agreement ${c.agreement} · 部分 partial ${c.partial} · ` +
      `失败 failed ${c.failed} (诉讼 litigation ${c.to_litigation}, 部门 department ${c.to_department}) · 在办 open ${c.open} · ` +
      `调解成功率 resolved ${pct(c.resolution_rate)}` : '';
  }
  function render(d) {
    $('gm-unit-name').textContent = `${d.unit.name_zh} · ${d.unit.name} (${d.unit.code})`;
    $('gm-totals').innerHTML = `<div class="fig"><span class="v" id="gm-open">${esc(d.open)}</span><span class="k">待办 open</span></div>
      <div class="fig"><span class="v">${esc(d.overdue)}</span><span class="k">超时 overdue</span></div>
      <div class="fig"><span class="v">${esc(d.taken)}</span><span class="k">已承办 taken</span></div>`;
    inbox(d);
    figures(d.figures);
    $('gm-status').textContent = `as of ${String(d.now).replace('T', ' ').slice(0, 19)}`;
  }
  async function act(id, action, note) {
    const url = `${cfg.actUrl}/${encodeURIComponent(id)}/${action}?unit=${encodeURIComponent(cfg.unit)}`;
    const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json', Accept: 'application/json'},
                                // a mediation room settles with the agreement (its case closes with it)
                                body: JSON.stringify(!note ? {} : cfg.mediation && action === 'settle' ? {note, agreement: note} : {note})});
    if (r.status === 401) { window.location.reload(); return; }
    const body = await r.json();
    if (!r.ok) throw new Error(`${body.message || r.status}${body.fix ? ` (${body.fix})` : ''}`);
    state.acted = (state.acted || 0) + 1;
    await window.gridmapScreen.refresh();
  }
  $('gm-inbox-body').addEventListener('click', (ev) => {
    const btn = ev.target.closest('button');
    if (!btn) return;
    const id = btn.dataset.id;
    let action = 'take', note = null;
    if (btn.classList.contains('gm-settle')) {
      const input = document.querySelector(`#gm-inbox-body input.gm-note[data-id="${id}"]`);
      note = input ? input.value.trim() : '';
      if (!note) { $('gm-status').textContent = '办结需填写说明 settling needs a note'; return; }
      action = 'settle';
    }
    btn.disabled = true;
    act(id, action, note).catch((err) => {
      btn.disabled = false;
      state.errors.push(String(err));
      $('gm-status').textContent = `error: ${err.message || err}`;
    });
  });
  live(render);
}());
