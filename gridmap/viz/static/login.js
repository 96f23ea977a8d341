/* gridmap command-centre login: posts the form as JSON, shows the server's message on failure and opens the
 * map on success. Without JavaScript the form still works (a plain POST; the server answers with a redirect
 * or this page again with the message). The session itself is an HttpOnly cookie this script never sees.
 */
(function () {
  'use strict';
  const form = document.getElementById('gm-login');
  const err = document.getElementById('gm-login-error');
  const btn = document.getElementById('gm-login-submit');
  function show(text) { err.textContent = text; err.hidden = false; }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    btn.disabled = true;
    const body = {username: form.username.value, password: form.password.value, next: form.next.value};
    try {
      const r = await fetch(form.action, {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', Accept: 'application/json'}, body: JSON.stringify(body)});
      let j = null;
      try { j = await r.json(); } catch (e) { j = null; }
      if (r.ok && j) { window.location.replace(j.next || form.next.value); return; }
      const msg = j && j.message ? j.message : `HTTP ${r.status}`;
      show(r.status === 401 ? `用户名或密码错误 — ${msg}` : (j && j.fix ? `${msg}. ${j.fix}` : msg));
      form.password.value = '';
      form.password.focus();
    } catch (e) {
      show(`无法连接 cannot reach the server: ${e}`);
    } finally {
      btn.disabled = false;
    }
  });
}());
