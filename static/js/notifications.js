// Live notifications for every tab of a signed-in user, without a build step.
//
// The protocol the page follows (typed once on the server in webapp/realtime/protocol.py; the stream sends
// these as named SSE events, the leader tab relays them to the others unchanged):
//   notification  (the server's `new`) an item's HTML, with its seq as the SSE id. Shown once:
//                 only a seq above inbox.seq is applied, and inbox.seq then becomes that seq.
//   count         {unread_count, seq, version}: applied only when version > inbox.version, so
//                 a count that arrives late never overwrites a newer one.
//   read          {ids, read, unread_count, seq, version[, up_to_seq]}: marks those items in
//                 every view; its count follows the same version rule.
//   reset         {seq, unread_count, version}: the server cannot prove continuity from our position
//                 (a gap beyond its replay limit, or a seq it never issued, e.g. after a restore
//                 from a backup). The server is the truth: inbox.seq becomes its seq even when
//                 LOWER, the version is forgotten (the count that follows is taken whatever its
//                 version), and the dropdown and the inbox list are fetched again.
//   close         never reaches the page: the server ends the stream (shutdown, slow reader,
//                 token expiry, lifetime), and htmx reconnects with Last-Event-ID = last seq.
//
// One tab per browser holds the stream (the leader) and relays every message to the other
// tabs over a BroadcastChannel, so eight tabs need one connection, not eight (browsers allow
// six per host over HTTP/1.1). The leader is elected with Web Locks where they exist (secure
// contexts), otherwise with a lease in localStorage kept alive by heartbeats (see below).
// A new leader resumes the stream from the last seq its tab saw.
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

  function applyCount(count) {
    if (!(count.version > inbox.version)) return; // an older count arriving late
    inbox.version = count.version;
    setBadge(count.unread_count);
  }

  function setUpToSeq(seq, exactly) {
    document.querySelectorAll("[data-up-to-seq]").forEach((input) => {
      if (exactly || Number(input.value) < seq) input.value = String(seq);
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
    // Adopt the server's position even when it is lower than ours: after a restore or a rebuilt
    // inbox, the numbers we held no longer exist and the next item will be seq + 1 of *its* count.
    inbox.seq = Number(reset.seq) || 0;
    inbox.version = -1; // any count from the server is newer than what we knew
    setUpToSeq(inbox.seq, true);
    if (!panel.hidden) htmx.trigger(bell, "tidings:open");
    refetchInboxList();
    document.dispatchEvent(new CustomEvent("tidings:reset"));
    const response = await fetch("/api/v1/notifications/unread_count", { credentials: "same-origin" });
    if (response.ok) applyCount(await response.json());
  }

  // The inbox page (/notifications) lists items the server may no longer have: load it again.
  async function refetchInboxList() {
    const list = document.getElementById("inbox-list");
    if (!list) return;
    const response = await fetch(location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("inbox-list");
    if (!fresh || !list.isConnected) return;
    list.replaceWith(fresh);
    htmx.process(fresh);
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
  let stream = null;

  function openStream() {
    if (stream) return;
    stream = document.createElement("div");
    stream.hidden = true;
    stream.id = "notif-stream";
    stream.setAttribute("hx-sse:connect", `/notifications/stream?last_event_id=${inbox.seq}`);
    // Keep streaming while the tab is hidden: that is when browser notifications matter.
    stream.setAttribute("hx-config", '{"sse": {"pauseOnBackground": false, "reconnectMaxDelay": 10000}}');
    for (const kind of ["notification", "count", "read", "reset"]) {
      stream.addEventListener(kind, (event) => {
        const message = { kind, data: event.detail.data, id: event.detail.id };
        apply(message);
        channel?.postMessage(message);
      });
    }
    document.body.appendChild(stream);
    htmx.process(stream);
    root.dataset.streamLeader = "true";
  }

  function closeStream() {
    if (!stream) return;
    const element = stream;
    stream = null;
    delete root.dataset.streamLeader;
    // A swap that deletes the element runs htmx's cleanup, which aborts the connection at once.
    htmx.swap({ sourceElement: element, target: element, swap: "delete", text: "" });
  }

  // A tab that is not the leader catches up with anything that happened between its page being
  // rendered and its joining the channel.
  function catchUp() {
    fetch("/api/v1/notifications/unread_count", { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then((state) => {
        if (state && state.seq > inbox.seq && !stream) {
          inbox.seq = state.seq;
          applyCount(state);
          if (!panel.hidden) htmx.trigger(bell, "tidings:open");
        }
      });
  }

  // Without Web Locks (plain-HTTP origins by host name or LAN address are not secure contexts):
  // a lease in localStorage {id, term, until}, renewed by the leader with a heartbeat that it
  // also posts on the channel. A tab that sees no live lease claims it with the next term: it
  // posts a claim, waits a moment, and leads unless a leader answered or a rival claimed a
  // higher term (or the same term with a smaller id). Should two tabs lead all the same (a frozen
  // leader waking up after a takeover), the one with the older term (then the larger id) steps
  // down on the next heartbeat it hears. A leader that is going away (pagehide, beforeunload)
  // resigns, and the other tabs claim at once instead of waiting for the lease to lapse. A leader
  // answers every claim from its message handler, which background timer throttling does not delay.
  function electWithLease() {
    const LEASE_KEY = "tidings-inbox-lease";
    const HEARTBEAT_MS = 500;
    const LEASE_MS = 1500;
    const CLAIM_MS = 150;
    const me = [...crypto.getRandomValues(new Uint32Array(2))].map((n) => n.toString(16).padStart(8, "0")).join("");
    let leading = false;
    let claiming = false;
    let term = 0; // the highest term this tab knows of; its own while it leads
    let heardLeaderAt = 0;
    const claims = []; // [{id, term, at}] heard recently

    const beats = (other, otherTerm) => otherTerm > term || (otherTerm === term && other < me);

    function readLease() {
      try {
        return JSON.parse(localStorage.getItem(LEASE_KEY) || "null");
      } catch {
        return null; // storage disabled: heartbeats alone decide
      }
    }
    function writeLease() {
      try {
        localStorage.setItem(LEASE_KEY, JSON.stringify({ id: me, term, until: Date.now() + LEASE_MS }));
      } catch {}
    }
    function dropLease() {
      try {
        if (readLease()?.id === me) localStorage.removeItem(LEASE_KEY);
      } catch {}
    }
    function leaderAlive() {
      if (Date.now() - heardLeaderAt < LEASE_MS) return true;
      const lease = readLease();
      return Boolean(lease && lease.id !== me && lease.until > Date.now());
    }
    function heartbeat() {
      writeLease();
      channel.postMessage({ kind: "leader", id: me, term });
    }
    function stepDown() {
      leading = false;
      closeStream();
    }

    async function claim() {
      if (leading || claiming) return;
      claiming = true;
      const started = Date.now();
      term = Math.max(term, readLease()?.term || 0) + 1;
      writeLease();
      channel.postMessage({ kind: "claim", id: me, term });
      await new Promise((resolve) => setTimeout(resolve, CLAIM_MS));
      claiming = false;
      const answered = heardLeaderAt >= started;
      const beaten = claims.some((c) => c.at >= started - CLAIM_MS && beats(c.id, c.term));
      if (answered || beaten || leading) return;
      leading = true;
      heartbeat();
      openStream();
    }

    channel.addEventListener("message", (event) => {
      const message = event.data;
      if (message.id === me) return;
      if (message.kind === "leader") {
        heardLeaderAt = Date.now();
        if (leading && beats(message.id, message.term)) stepDown();
        else if (leading) heartbeat(); // the other one steps down on hearing it
        term = Math.max(term, message.term);
      } else if (message.kind === "claim") {
        if (leading) heartbeat();
        claims.push({ id: message.id, term: message.term, at: Date.now() });
        while (claims.length > 32) claims.shift();
      } else if (message.kind === "resign") {
        heardLeaderAt = 0;
        claim();
      }
    });

    function resign() {
      if (!leading) return;
      stepDown();
      dropLease();
      channel.postMessage({ kind: "resign", id: me });
    }
    addEventListener("pagehide", resign);
    addEventListener("beforeunload", resign);

    setInterval(() => {
      if (leading) heartbeat();
      else if (!leaderAlive()) claim();
    }, HEARTBEAT_MS);
    catchUp();
    if (!leaderAlive()) claim();
  }

  if (channel) {
    channel.addEventListener("message", (event) => apply(event.data));
  }
  if (channel && navigator.locks) {
    navigator.locks.request("tidings-inbox-stream", () => {
      openStream();
      return new Promise(() => {}); // held until this tab goes away
    });
    catchUp();
  } else if (channel) {
    electWithLease();
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
