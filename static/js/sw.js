// The Tidings service worker, served from the site root (/sw.js) so its scope is the whole site.
// It does one thing: Web Push. A push carries JSON (jobs/push.py): {title, body, url, tag, icon}.
// `tag` is the push's topic (event-<id>, or "summary"): a newer system notification about the
// same event replaces the older one instead of piling up. `url` is a signed link (/n/<token>)
// that opens the item and marks it read, or the inbox for a summary.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
// Take over open tabs at once, so a click can bring one of them to the item.
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = {};
  }
  const options = {
    body: data.body || "",
    icon: data.icon || "/static/icons/push-192.png",
    data: { url: data.url || "/notifications" },
  };
  if (data.tag) {
    options.tag = data.tag;
    options.renotify = true; // a replacement still alerts: it is news
  }
  event.waitUntil(self.registration.showNotification(data.title || "Tidings", options));
});

// Bring a Tidings tab to the item (or open one): the click is the user's, so the browser lets us
// focus and open windows while it is handled.
async function openFromNotification(notification) {
  notification.close();
  const target = new URL((notification.data && notification.data.url) || "/notifications", self.location.origin);
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const tab = windows.find((client) => new URL(client.url).origin === target.origin && "navigate" in client);
  if (tab) {
    try {
      await tab.focus();
    } catch (error) {
      // Not allowed outside a click: the tab still goes to the item below.
    }
    try {
      await tab.navigate(target.href);
      return;
    } catch (error) {
      // A tab this worker does not control cannot be navigated: open a window instead.
    }
  }
  await self.clients.openWindow(target.href);
}

self.addEventListener("notificationclick", (event) => {
  event.waitUntil(openFromNotification(event.notification));
});
