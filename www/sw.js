// Offline support. precache.js (written by tools/build_www.mjs) lists every file of this build and a version hashed
// from their contents. A build is cached whole under its own name before it serves anything, and it takes over only
// when the page agrees (app.js offers a reload), so a page never mixes files of two builds.
importScripts('precache.js');

const PREFIX = 'wrn-wasm-';
const CACHE = PREFIX + self.PRECACHE.version;

self.addEventListener('install', (event) => {
  // addAll is all-or-nothing: a half-downloaded build never becomes a cache.
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(self.PRECACHE.files)));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key.startsWith(PREFIX) && key !== CACHE) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data === 'skip-waiting') self.skipWaiting();
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(event.request, { ignoreSearch: true });
    if (hit) return hit;
    // Not precached (the single-threaded .wasm on a host without cross-origin isolation): keep it in this build's
    // cache, so it too works offline and goes away with this build.
    const response = await fetch(event.request);
    if (response.ok) await cache.put(event.request, response.clone());
    return response;
  })());
});
