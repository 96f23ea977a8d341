// The receipt: the report's status (reported → dispatched → on site → resolved), polled every 10 s; once resolved
// it asks "is it fixed?", and "no" reopens the report.
const $ = (id) => document.getElementById(id);
const token = $('receipt').dataset.token;
const fmt = (iso) => (iso ? new Date(iso).toLocaleString('zh-CN', {hour12: false}) : '');
const EN = {reported: 'reported', dispatched: 'dispatched', on_site: 'on site', resolved: 'resolved'};
const esc = (v) => String(v == null ? '' : v).replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));

function show(s) {
  $('r-title').textContent = `${s.code} · ${s.category_name_zh || ''} ${s.category_name || s.category}`;
  $('steps').innerHTML = s.steps.map((st) => `<li class="${st.done ? 'done' : ''}" data-step="${esc(st.key)}">${esc(st.zh)} ${esc(EN[st.key])}${st.at ? ` · <small>${esc(fmt(st.at))}</small>` : ''}</li>`).join('');
  $('merged').hidden = !s.merged;
  $('ask').hidden = !s.ask_fixed;
  const a = $('answered');
  a.hidden = !(s.answered || s.reopened);
  if (s.reopened) a.textContent = '已重新处理 reopened: a team will be sent again.';
  else if (s.answered) a.textContent = s.answered.fixed ? '感谢确认 thank you: marked fixed.' : '已重新处理 reopened.';
  document.body.dataset.status = s.status;
}

async function load() {
  const r = await fetch(`/r/${token}/status`, {cache: 'no-store'});
  if (r.ok) show(await r.json());
}

async function answer(fixed) {
  const r = await fetch(`/r/${token}/answer`, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({fixed})});
  const body = await r.json();
  if (!r.ok) { $('r-error').textContent = `${body.message}. ${body.fix || ''}`; $('r-error').hidden = false; return; }
  show(body);
}

$('yes').addEventListener('click', () => answer(true));
$('no').addEventListener('click', () => answer(false));
load();
setInterval(load, 10000);
