// Live notifications for every tab of a signed-in user, without a build step.
//
// One tab per browser holds the stream (a leader elected with Web Locks); it relays every
// message to the other tabs over a BroadcastChannel, so eight tabs need one connection, not
// eight (browsers allow six per host over HTTP/1.1). When the leader closes, the lock passes to
// another tab, which resumes the stream from the last seq it saw. Every tab applies messages
// the same way: by seq for items (each shown once) and by version for counts (stale ones ignored).
(() => {
  "use strict";
  const root = document.getElementById("notif-root");
  if (!root || !window.htmx) return;

  const bell = document.getElementById("notif-bell");
  const panel = document.getElementById("notif-panel");
  const badge = document.getElementById("notif-badge");
  const toasts = document.getElementById("toasts");
  const inbox = { seq: Number(root.dataset.seq), version: Number(root.dataset.version) };
  window.tidingsInbox = inbox;

  // ---- applying what the stream says ------------------------------------------------------

  function setBadge(count) {
    badge.hidden = count <= 0;
    badge.textContent = count > 99 ? "99+" : String(count);
    // Counts stop at 100 (the server counts no further): 100 means "more than 99".
    const spoken = count > 99 ? "more than 99" : String(count);
    bell.setAttribute("aria-label", count > 0 ? `Notifications, ${spoken} unread` : "Notifications");
  }

  function applyCount(count, force) {
    if (!force && !(count.version > inbox.version)) return; // an older count arriving late
    inbox.version = Math.max(inbox.version, count.version || 0);
    setBadge(count.unread_count);
  }

  function setUpToSeq(seq) {
    document.querySelectorAll("[data-up-to-seq]").forEach((input) => {
      if (Number(input.value) < seq) input.value = String(seq);
    });
  }

  function itemFrom(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function insertItem(list, item) {
    if (list.querySelector(`[data-notification-id="${item.dataset.notificationId}"]`)) return;
    list.querySelector(".notif-empty")?.remove();
    const copy = item.cloneNode(true);
    list.prepend(copy);
    htmx.process(copy);
  }

  function applyNotification(html, seq) {
    if (!(seq > inbox.seq)) return; // already shown
    inbox.seq = seq;
    const item = itemFrom(html);
    const unreadList = document.querySelector('#notif-panel-body [data-section="unread"]');
    if (unreadList) {
      insertItem(unreadList, item);
      setUpToSeq(seq); // the user can see it now, so "mark all" may include it
    }
    const inboxList = document.getElementById("inbox-list");
    if (inboxList && inboxList.dataset.status !== "read" && [item.dataset.type, ""].includes(inboxList.dataset.type || "")) {
      insertItem(inboxList, item);
    }
    showToast(item.dataset);
    showSystemNotification(item.dataset);
  }

  function applyRead(change) {
    for (const id of change.ids || []) {
      document.querySelectorAll(`[data-notification-id="${id}"]`).forEach((element) => {
        element.classList.toggle("is-unread", !change.read);
        const label = element.querySelector(".notif-state");
        if (label) label.textContent = change.read ? "Read" : "Unread";
      });
    }
    applyCount(change);
    // "Mark all as read" elsewhere: an open dropdown here regroups its sections.
    if (change.up_to_seq !== undefined && !panel.hidden) htmx.trigger(bell, "tidings:open");
  }

  async function applyReset(reset) {
    inbox.seq = Math.max(inbox.seq, reset.seq || 0);
    const response = await fetch("/api/v1/notifications/unread_count", { credentials: "same-origin" });
    if (response.ok) applyCount(await response.json(), true);
    if (!panel.hidden) htmx.trigger(bell, "tidings:open");
    document.dispatchEvent(new CustomEvent("tidings:reset"));
  }

  function apply(message) {
    if (message.kind === "notification") applyNotification(message.data, Number(message.id));
    else if (message.kind === "count") applyCount(JSON.parse(message.data));
    else if (message.kind === "read") applyRead(JSON.parse(message.data));
    else if (message.kind === "reset") applyReset(JSON.parse(message.data));
  }

  // Counts that come back on our own htmx requests (HX-Trigger: tidings:count), and refusals.
  document.addEventListener("tidings:count", (event) => applyCount(event.detail));
  document.addEventListener("tidings:error", (event) => showToast({ title: event.detail.message, body: "", url: "#" }));

  // ---- one stream per browser ----------------------------------------------------------------

  const channel = "BroadcastChannel" in window ? new BroadcastChannel("tidings-inbox") : null;

  function openStream() {
    const source = document.createElement("div");
    source.hidden = true;
    source.id = "notif-stream";
    source.setAttribute("hx-sse:connect", `/notifications/stream?last_event_id=${inbox.seq}`);
    // Keep streaming while the tab is hidden: that is when browser notifications matter.
    source.setAttribute("hx-config", '{"sse": {"pauseOnBackground": false, "reconnectMaxDelay": 10000}}');
    for (const kind of ["notification", "count", "read", "reset"]) {
      source.addEventListener(kind, (event) => {
        const message = { kind, data: event.detail.data, id: event.detail.id };
        apply(message);
        channel?.postMessage(message);
      });
    }
    document.body.appendChild(source);
    htmx.process(source);
    root.dataset.streamLeader = "true";
  }

  if (channel) {
    channel.onmessage = (event) => apply(event.data);
  }
  if (channel && navigator.locks) {
    navigator.locks.request("tidings-inbox-stream", () => {
      openStream();
      return new Promise(() => {}); // held until this tab goes away
    });
    // A tab that is not the leader catches up with anything that happened between its page
    // being rendered and its joining the channel.
    fetch("/api/v1/notifications/unread_count", { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then((state) => {
        if (state && state.seq > inbox.seq && root.dataset.streamLeader !== "true") {
          inbox.seq = state.seq;
          applyCount(state);
          if (!panel.hidden) htmx.trigger(bell, "tidings:open");
        }
      });
  } else {
    openStream();
  }

  // ---- the dropdown ---------------------------------------------------------------------------

  function links() {
    return [...panel.querySelectorAll(".notif-link, .notif-panel-foot a")];
  }

  function openPanel() {
    panel.hidden = false;
    bell.setAttribute("aria-expanded", "true");
    htmx.trigger(bell, "tidings:open");
  }

  function closePanel(returnFocus) {
    if (panel.hidden) return;
    panel.hidden = true;
    bell.setAttribute("aria-expanded", "false");
    if (returnFocus) bell.focus();
  }

  bell.addEventListener("click", () => (panel.hidden ? openPanel() : closePanel(false)));
  document.addEventListener("click", (event) => {
    if (!root.contains(event.target)) closePanel(false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      event.preventDefault();
      closePanel(true);
    }
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const all = links();
    if (!all.length) return;
    event.preventDefault();
    const at = all.indexOf(document.activeElement);
    const next = event.key === "ArrowDown" ? Math.min(at + 1, all.length - 1) : Math.max(at - 1, 0);
    all[next].focus();
  });
  // htmx fires after:swap on the element that made the request (the bell), not on the target.
  bell.addEventListener("htmx:after:swap", () => {
    refreshPermissionButtons();
    if (!panel.hidden && document.activeElement === bell) links()[0]?.focus();
  });
  bell.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && !panel.hidden) {
      event.preventDefault();
      links()[0]?.focus();
    }
  });

  // ---- toasts and browser notifications -----------------------------------------------------

  function showToast(data) {
    const toast = document.createElement("a");
    toast.className = "toast";
    toast.href = data.url;
    toast.setAttribute("role", "status");
    const title = document.createElement("strong");
    title.textContent = data.title;
    toast.append(title);
    if (data.body) {
      const body = document.createElement("span");
      body.textContent = data.body;
      toast.append(body);
    }
    toasts.append(toast);
    setTimeout(() => toast.remove(), 6000);
  }

  function showSystemNotification(data) {
    if (!("Notification" in window) || Notification.permission !== "granted" || !document.hidden) return;
    // The tag makes several hidden tabs of this browser show it once.
    const shown = new Notification(data.title, { body: data.body, tag: `tidings-${data.notificationId}` });
    shown.onclick = () => {
      window.focus();
      window.location.href = data.url;
      shown.close();
    };
  }

  function refreshPermissionButtons() {
    const ask = "Notification" in window && Notification.permission === "default";
    document.querySelectorAll("[data-enable-browser-notifications]").forEach((button) => (button.hidden = !ask));
  }

  document.addEventListener("click", (event) => {
    if (!event.target.closest("[data-enable-browser-notifications]")) return;
    Notification.requestPermission().then(refreshPermissionButtons);
  });

  // ---- relative times ------------------------------------------------------------------------

  function relative(iso) {
    const seconds = (Date.now() - Date.parse(iso)) / 1000;
    if (seconds < 45) return "just now";
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    const days = Math.round(seconds / 86400);
    return days === 1 ? "yesterday" : `${days} days ago`;
  }

  setInterval(() => {
    document.querySelectorAll("time[data-relative]").forEach((time) => {
      time.textContent = relative(time.getAttribute("datetime"));
    });
  }, 30000);
})();
