"use strict";
// The wallet page's service worker: the page and its files are kept here, so that it opens (and shows the
// payment code) with the network cut. Network first: a page served online is the newest one.
const CACHE = "wallet-page-v1";
const SHELL = ["/w/", "/w/app.js", "/w/manifest.webmanifest", "/w/icon.svg",
  "/w/vendor/qrcode-generator-2.0.4.js", "/w/vendor/jsbarcode-code128-3.12.3.min.js"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin || url.pathname.startsWith("/w/signin/")) {
    return;
  }
  event.respondWith(fetch(request).then((answer) => {
    if (answer.ok && !answer.redirected) {
      const copy = answer.clone();
      caches.open(CACHE).then((cache) => cache.put(request, copy));
    }
    return answer;
  }).catch(() => caches.match(request, { ignoreSearch: true })
    .then((kept) => kept || caches.match("/w/"))));
});
