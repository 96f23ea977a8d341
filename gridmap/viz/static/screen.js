/* gridmap screens of the levels of command (levels.js, unit.js): what both need. The page's config, escaping,
 * reading the app's own JSON (a 401 sends the user to the login form and back), and the live loop: fetch
 * cfg.dataUrl, render it, again every cfg.refreshMs. The session is an HttpOnly cookie this script never sees. */
(function () {
  'use strict';
  const cfg = JSON.parse(document.getElementById('gm-config').textContent);
  const $ = (id) => document.getElementById(id);
  const state = {loaded: 0, errors: [], data: null};
  function esc(v) {
    return String(v === null || v === undefined ? '–' : v)
      .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  }
  async function getJSON(url) {
    const r = await fetch(url, {headers: {Accept: 'application/json'}});
    if (r.status === 401) {
      const next = window.location.pathname + window.location.search;
      window.location.replace(`${cfg.loginUrl}?expired=1&next=${encodeURIComponent(next)}`);
      throw new Error('session ended');
    }
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }
  /* render(data) draws the screen; each successful draw counts in body[data-loaded] (the tests wait on it). */
  function live(render) {
    async function refresh() {
      try {
        state.data = await getJSON(cfg.dataUrl);
        render(state.data);
        state.loaded += 1;
        document.body.dataset.loaded = String(state.loaded);
      } catch (err) { state.errors.push(String(err)); $('gm-status').textContent = `error: ${err}`; }
    }
    window.gridmapScreen = {state, refresh};
    refresh();
    setInterval(refresh, cfg.refreshMs);
  }
  window.gmScreen = {cfg, $, esc, getJSON, live, state};
}());
