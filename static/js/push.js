// "Push notifications" on the preferences page (templates/_push_devices.html): enable or disable
// Web Push on this device and mark which listed device this is. The list itself is server-rendered
// (/push/devices, swapped in by htmx); this script finds its buttons after each swap.
(() => {
  "use strict";
  const LIST = "#push-device-list";
  const supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

  function csrfHeaders() {
    try {
      const headers = JSON.parse(document.body.getAttribute("hx-headers:inherited") || "{}");
      return { "x-csrftoken": headers["x-csrftoken"] || "" };
    } catch (error) {
      return {};
    }
  }

  function keyBytes(base64url) {
    const base64 = (base64url + "=".repeat((4 - (base64url.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  }

  function parts() {
    const controls = document.querySelector("[data-push-controls]");
    if (!controls) return null;
    return {
      controls,
      status: controls.querySelector("[data-push-status]"),
      enable: controls.querySelector("[data-push-enable]"),
      disable: controls.querySelector("[data-push-disable]"),
    };
  }

  async function reloadList() {
    await htmx.ajax("GET", "/push/devices", { target: LIST, swap: "innerHTML" });
    await refresh();
  }

  async function currentSubscription() {
    const registration = await navigator.serviceWorker.getRegistration("/");
    return registration ? registration.pushManager.getSubscription() : null;
  }

  function listed(subscription) {
    if (!subscription) return null;
    return [...document.querySelectorAll(".push-device[data-endpoint]")].find(
      (item) => item.dataset.endpoint === subscription.endpoint,
    );
  }

  async function refresh() {
    const ui = parts();
    if (!ui) return;
    ui.controls.dataset.ready = "";
    ui.enable.hidden = ui.disable.hidden = true;
    if (!supported) {
      ui.status.textContent = "This browser does not support push notifications.";
      return;
    }
    if (Notification.permission === "denied") {
      ui.status.textContent = "Notifications are blocked for this site in the browser's settings.";
      return;
    }
    const item = listed(await currentSubscription());
    if (item) {
      item.querySelector("[data-this-device]").hidden = false;
      ui.disable.hidden = false;
    } else {
      ui.enable.hidden = false;
    }
  }

  async function enable(ui) {
    ui.status.textContent = "Asking the browser…";
    if ((await Notification.requestPermission()) !== "granted") {
      ui.status.textContent = "Push stays off: the browser did not allow notifications.";
      return refresh();
    }
    const registration = await navigator.serviceWorker.register("/sw.js");
    await navigator.serviceWorker.ready;
    const subscription =
      (await registration.pushManager.getSubscription()) ||
      (await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: keyBytes(ui.controls.dataset.vapidKey),
      }));
    const response = await fetch("/api/v1/me/push-subscriptions", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", ...csrfHeaders() },
      body: JSON.stringify(subscription.toJSON()),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      await subscription.unsubscribe();
      ui.status.textContent = `Push could not be enabled: ${(body.error && body.error.message) || response.status}.`;
      return;
    }
    await reloadList();
    const fresh = parts();
    if (fresh) fresh.status.textContent = "Push is on for this device.";
  }

  async function disable(ui) {
    const subscription = await currentSubscription();
    const item = listed(subscription);
    if (item) {
      const response = await fetch(`/api/v1/me/push-subscriptions/${item.dataset.id}`, {
        method: "DELETE",
        credentials: "same-origin",
        headers: csrfHeaders(),
      });
      if (!response.ok && response.status !== 404) {
        ui.status.textContent = "Push could not be disabled; try again.";
        return;
      }
    }
    if (subscription) await subscription.unsubscribe();
    await reloadList();
    const fresh = parts();
    if (fresh) fresh.status.textContent = "Push is off for this device.";
  }

  document.addEventListener("click", (event) => {
    const ui = parts();
    if (!ui) return;
    const failed = (error) => {
      ui.status.textContent = `Push could not be changed: ${error.message || error}.`;
      refresh();
    };
    if (event.target.closest("[data-push-enable]")) enable(ui).catch(failed);
    else if (event.target.closest("[data-push-disable]")) disable(ui).catch(failed);
  });
  // The list arrives (and comes back after a Remove) through htmx: set its buttons up once.
  document.addEventListener("htmx:after:swap", () => {
    const ui = parts();
    if (ui && !("ready" in ui.controls.dataset)) refresh().catch(() => {});
  });
  refresh().catch(() => {});
})();
