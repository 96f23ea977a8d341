// The field app's service worker (scope /field/). Two caches, both named after the app's version (a hash of
// the shell's files, filled in by the server): a new version gets new caches and the old ones are deleted when
// it activates, so a phone never runs an old script against a newer API (TicketsCAD's warning).
//  - the shell: a named allowlist (SHELL), precached at install, served cache-first; the page itself
//    network-first (a fresh page when online, the cached one offline);
//  - the street's map (/v1/field/map: roads and buildings, no personal data): the one response fetched with
//    credentials that is cached, served from the cache and refreshed in the background.
// Nothing else is cached: assignments, events, positions and photos always go to the network. Actions that
// cannot reach it wait in the page's IndexedDB queue (queue.js); a 'sync' event asks open pages to send them.
const VERSION = '{{version}}';
const SHELL = {{shell}};
const SHELL_CACHE = `gridmap-field-shell-${VERSION}`;
const MAP_CACHE = `gridmap-field-map-${VERSION}`;
const MAP_PATH = '/v1/field/map';

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    await cache.addAll(SHELL.map((u) => new Request(u, {cache: 'reload', credentials: 'omit'})));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const keys = await caches.keys();
    await Promise.all(keys.filter((k) => k.startsWith('gridmap-field-') && !k.endsWith(`-${VERSION}`))
      .map((k) => caches.delete(k)));
    await self.clients.claim();
  })());
});

async function networkFirst(request, fallbackUrl) {
  try {
    return await fetch(request);
  } catch (err) {
    const cached = await caches.match(fallbackUrl, {cacheName: SHELL_CACHE});
    if (cached) return cached;
    throw err;
  }
}

async function shellFirst(request, url) {
  const cached = await caches.match(url.pathname, {cacheName: SHELL_CACHE});
  return cached || fetch(request);
}

async function mapData(event) {
  const cache = await caches.open(MAP_CACHE);
  const cached = await cache.match(MAP_PATH);
  const refresh = fetch(event.request).then(async (response) => {
    if (response.ok) await cache.put(MAP_PATH, response.clone());
    return response;
  });
  if (cached) {
    event.waitUntil(refresh.catch(() => undefined));
    return cached;
  }
  return refresh;
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || event.request.method !== 'GET') return;
  if (url.pathname === '/field/') {
    event.respondWith(networkFirst(event.request, '/field/'));
  } else if (SHELL.includes(url.pathname)) {
    event.respondWith(shellFirst(event.request, url));
  } else if (url.pathname === MAP_PATH) {
    event.respondWith(mapData(event));
  }
});

async function tellPages(message) {
  const pages = await self.clients.matchAll({type: 'window'});
  for (const p of pages) p.postMessage(message);
  return pages.length;
}

// Background Sync where the browser has it: the open pages send their queue (the queue lives in the page's
// IndexedDB and is sent by the page, so that one sender keeps the order).
self.addEventListener('sync', (event) => {
  if (event.tag === 'gridmap-queue') event.waitUntil(tellPages({type: 'flush'}));
});

self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'version' && event.ports[0]) event.ports[0].postMessage({version: VERSION});
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const pages = await self.clients.matchAll({type: 'window'});
    if (pages.length) return pages[0].focus();
    return self.clients.openWindow('/field/');
  })());
});
