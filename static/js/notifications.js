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
//   archive       {ids, archived, unread_count, seq, version}: those items were archived (they
//                 leave the dropdown and the inbox list, and appear under its Archived filter)
//                 or brought back; its count follows the same version rule.
//   reset         {seq, unread_count, version}: the server cannot prove continuity from our position
//                 (a gap beyond its replay limit, or a seq it never issued, e.g. after a restore
//                 from a backup). The server is the truth: inbox.seq becomes its seq even when
//                 LOWER, the version is forgotten (the count that follows is taken whatever its
//                 version), and the dropdown and the inbox list are fetched again.
//   close         never reaches the page: the server ends the stream (shutdown, slow reader,
//                 token expiry, lifetime), and htmx reconnects with Last-Event-ID = last seq.
//
// Two more messages are the page's own, made by the leader from its stream's state and relayed
// like the others: `connection` {up} (the stream is down: "Reconnecting…" shows) and `opening`
// (a stream (re)connected: what it replays before its first `count` was missed while away, and
// is shown as one summary toast rather than one toast per item).
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
  const panelBody = document.getElementById("notif-panel-body");
  const badge = document.getElementById("notif-badge");
  const toasts = document.getElementById("toasts");
  const announcer = document.getElementById("announcer");
  const topbar = document.querySelector("header.topbar");
  const inbox = { seq: Number(root.dataset.seq), version: Number(root.dataset.version) };
  let unreadCount = Number(root.dataset.unread) || 0; // the count the badge shows (the dropdown's header too)
  window.tidingsInbox = inbox;

  // ---- applying what the stream says ------------------------------------------------------

  function setBadge(count) {
    unreadCount = count;
    refreshPanelCount();
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
    const shows = !["read", "archived"].includes(inboxList?.dataset.status);
    if (inboxList && shows && [item.dataset.type, ""].includes(inboxList.dataset.type || "")) {
      insertItem(inboxList, item);
    }
    const kind = item.querySelector(".notif-kind")?.textContent || "";
    const toast = { ...item.dataset, kind };
    if (opening) opening.items.push(toast);
    else {
      toastFor(toast);
      announceItems([toast]);
    }
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
    regroupPanel();
    applyCount(change);
    // "Mark all as read" elsewhere: an open dropdown here regroups its sections.
    if (change.up_to_seq !== undefined && !panel.hidden) htmx.trigger(bell, "tidings:open");
  }

  // Archived items leave the dropdown and every list but the Archived one; brought back, they
  // return to those. What leaves is removed here; what arrives is only known to the server, so
  // the view that should now show it is fetched again.
  function applyArchive(change) {
    const inboxList = document.getElementById("inbox-list");
    const archivedList = inboxList?.dataset.status === "archived";
    for (const id of change.ids || []) {
      document.querySelectorAll(`#notif-panel-body [data-notification-id="${id}"]`).forEach((item) => {
        if (change.archived) item.remove();
      });
      if (inboxList && change.archived !== archivedList) {
        inboxList.querySelector(`[data-notification-id="${id}"]`)?.remove();
      }
    }
    if (inboxList && change.archived === archivedList) refetchInboxList();
    if (!change.archived && !panel.hidden) htmx.trigger(bell, "tidings:open");
    applyCount(change);
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

  // The inbox page's list says "Nothing here." once its last item leaves it (archived, brought
  // back from the Archived filter), as the page would say after a reload.
  const main = document.querySelector("main");
  if (main) {
    new MutationObserver(() => {
      const list = document.getElementById("inbox-list");
      if (!list || list.querySelector("[data-notification-id], .inbox-more, .notif-empty")) return;
      list.append(element("li", "notif-empty empty", "Nothing here."));
    }).observe(main, { childList: true, subtree: true });
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
    else if (message.kind === "count") {
      applyCount(JSON.parse(message.data));
      endOpening(); // the server ends every (re)connection's opening replay with a count
    }
    else if (message.kind === "read") applyRead(JSON.parse(message.data));
    else if (message.kind === "archive") applyArchive(JSON.parse(message.data));
    else if (message.kind === "reset") applyReset(JSON.parse(message.data));
    else if (message.kind === "connection") setConnection(message.up, message.failed);
    else if (message.kind === "opening") beginOpening();
  }

  // A message of this tab's stream (or about it): applied here and relayed to the other tabs.
  function relay(message) {
    apply(message);
    channel?.postMessage(message);
  }

  // Counts that come back on our own htmx requests (HX-Trigger: tidings:count), and refusals.
  document.addEventListener("tidings:count", (event) => applyCount(event.detail));
  document.addEventListener("tidings:error", (event) => showError(event.detail.message));

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
    for (const kind of ["notification", "count", "read", "archive", "reset"]) {
      stream.addEventListener(kind, (event) => relay({ kind, data: event.detail.data, id: event.detail.id }));
    }
    // The stream's state. A stream the server ends on purpose (lifetime, token expiry) comes back
    // within seconds by itself, so "Reconnecting…" waits a moment then; a failed attempt shows it at once.
    stream.addEventListener("htmx:sse:after:connection", () => {
      relay({ kind: "connection", up: true });
      relay({ kind: "opening" });
    });
    stream.addEventListener("htmx:sse:before:connection", (event) => {
      if (event.detail.connection.attempt > 0) relay({ kind: "connection", up: false, failed: false });
    });
    stream.addEventListener("htmx:sse:error", () => relay({ kind: "connection", up: false, failed: true }));
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

  function section(name) {
    return panelBody.querySelector(`[data-section="${name}"]`);
  }

  // An item goes into a section in seq order (newest first), as the server lists them.
  function placeInOrder(list, item) {
    const seq = Number(item.dataset.seq);
    const after = [...list.querySelectorAll(":scope > [data-notification-id]")].find(
      (other) => other !== item && Number(other.dataset.seq) < seq,
    );
    if (item.nextElementSibling !== after || item.parentElement !== list) list.insertBefore(item, after || null);
  }

  // An item marked read moves to "Earlier" at once (and back to "Unread" when marked unread),
  // wherever the change came from: its own button (a swap), another tab (a `read` message).
  function regroupPanel() {
    const unread = section("unread");
    const earlier = section("earlier");
    if (!unread || !earlier) return;
    for (const item of unread.querySelectorAll(":scope > .notif-item:not(.is-unread)")) placeInOrder(earlier, item);
    for (const item of earlier.querySelectorAll(":scope > .notif-item.is-unread")) placeInOrder(unread, item);
    const caughtUp = unread.querySelector(".notif-empty");
    const anyUnread = unread.querySelector("[data-notification-id]");
    if (anyUnread) caughtUp?.remove();
    else if (!caughtUp) unread.append(element("li", "notif-empty muted small", "You’re all caught up."));
    const anyEarlier = Boolean(earlier.querySelector("[data-notification-id]"));
    earlier.hidden = !anyEarlier;
    panelBody.querySelector('[data-section-heading="earlier"]')?.toggleAttribute("hidden", !anyEarlier);
    refreshPanelCount();
  }

  // The header's unread count, and "N more unread" when more are unread than the dropdown shows.
  // Counts stop at 100 ("more than 99"), so at 100 the rest is "at least": "90+ more unread".
  function refreshPanelCount() {
    const head = panelBody.querySelector("[data-panel-unread-count]");
    const more = panelBody.querySelector("[data-more-unread]");
    if (!head || !more) return;
    const count = unreadCount;
    const label = count > 99 ? "99+" : String(count);
    head.dataset.panelUnreadCount = String(count);
    head.hidden = count <= 0;
    if (head.textContent !== `${label} unread`) head.textContent = `${label} unread`;
    const rest = Math.max(0, count - section("unread").querySelectorAll("[data-notification-id]").length);
    const text = `${rest}${count > 99 ? "+" : ""} more unread`;
    more.hidden = rest <= 0;
    if (more.textContent !== text) more.textContent = text;
  }

  // Swaps inside the dropdown (an item's own buttons replace or delete it) fire their htmx events on
  // elements already gone from the page, so the lists are watched instead.
  new MutationObserver((records) => {
    if (records.some((record) => record.target.matches?.(".notif-list"))) regroupPanel();
  }).observe(panelBody, { childList: true, subtree: true });

  function links() {
    return [...panel.querySelectorAll(".notif-link, .notif-more:not([hidden]), .notif-panel-foot a")];
  }

  function openPanel() {
    panel.hidden = false;
    bell.setAttribute("aria-expanded", "true");
    arrange();
    htmx.trigger(bell, "tidings:open");
  }

  function closePanel(returnFocus) {
    if (panel.hidden) return;
    panel.hidden = true;
    bell.setAttribute("aria-expanded", "false");
    arrange();
    if (returnFocus) bell.focus();
  }

  // Where the panel and the toasts go. CSS places the panel (under the bell; on a phone, across
  // the screen under the top bar); this keeps it inside the viewport whatever the header holds
  // (a long name can push the bell anywhere), ends it above the toast stack so no toast covers
  // it, and keeps the stack below the top bar, so no toast covers the bell. Only when the stack
  // would leave the panel too little room (a short screen) are the toasts held back, their
  // timers paused, until the panel closes.
  const EDGE = 8;
  function arrange() {
    const bar = topbar.getBoundingClientRect();
    toasts.style.maxHeight = `${Math.max(0, innerHeight - Math.max(bar.bottom, 0) - 2 * EDGE)}px`;
    holdToasts(false);
    panel.style.removeProperty("translate");
    panel.style.removeProperty("max-height");
    if (panel.hidden) return;
    const width = document.documentElement.clientWidth;
    let box = panel.getBoundingClientRect();
    const shift = box.left < EDGE ? EDGE - box.left : Math.min(0, width - EDGE - box.right);
    if (shift) {
      panel.style.translate = `${shift}px 0`;
      box = panel.getBoundingClientRect();
    }
    let bottom = innerHeight - EDGE;
    const stack = toasts.getBoundingClientRect();
    if (stack.height > 0 && stack.left < box.right && stack.right > box.left && stack.top < box.bottom) {
      if (stack.top - EDGE - box.top >= Math.min(240, innerHeight * 0.4)) bottom = stack.top - EDGE;
      else holdToasts(true);
    }
    const limit = parseFloat(getComputedStyle(panel).maxHeight) || Infinity;
    if (bottom - box.top < limit) panel.style.maxHeight = `${Math.max(0, bottom - box.top)}px`;
  }
  addEventListener("resize", arrange);

  bell.addEventListener("click", () => (panel.hidden ? openPanel() : closePanel(false)));
  document.addEventListener("click", (event) => {
    // Closing a toast beside the open panel leaves the panel open. (The path, not the target: a
    // toast's close button is gone from the page by the time the click reaches the document.)
    const path = event.composedPath();
    if (!path.includes(root) && !path.includes(toasts)) closePanel(false);
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
  // The panel's contents are fetched again on opening and whenever another tab (or this one's
  // "Mark all as read") regroups them: whatever had the focus in it has it again afterwards.
  let refocus = null;
  bell.addEventListener("htmx:before:request", () => {
    refocus = panel.contains(document.activeElement) ? sameControl(document.activeElement) : null;
  });
  // htmx fires after:swap on the element that made the request (the bell), not on the target.
  bell.addEventListener("htmx:after:swap", () => {
    refreshPermissionButtons();
    arrange();
    if (!panel.hidden && document.activeElement === bell) links()[0]?.focus();
    else if (!panel.hidden && refocus && !panel.contains(document.activeElement)) focusOn(refocus());
    refocus = null;
  });
  bell.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && !panel.hidden) {
      event.preventDefault();
      links()[0]?.focus();
    }
  });
  // The panel is a non-modal dialog: Tab past its last control (or Shift+Tab before the bell)
  // closes it, focus going on to where the key sent it. Focus that goes nowhere (a swapped-out
  // button, another window) and a click on a toast beside it leave it open.
  root.addEventListener("focusout", (event) => {
    const to = event.relatedTarget;
    if (!panel.hidden && to && !root.contains(to) && !toasts.contains(to)) closePanel(false);
  });

  // ---- focus when a list changes under it ------------------------------------------------------

  // Marking an item read (or unread), and "Mark all as read", replace the control that was used
  // (hx-swap): its focus would fall to <body>. A keyboard user goes on from there instead: after
  // marking one read, to the next unread item's "Mark as read" (the nearest earlier one after the
  // last), then to the list's heading when none is left; after marking one unread, to that item's
  // button again (to undo); after "Mark all as read", to the heading.
  document.addEventListener("htmx:before:request", (event) => {
    const source = event.target;
    if (!(source instanceof Element) || !source.contains(document.activeElement)) return;
    const scope = source.closest("#notif-panel, #inbox-list");
    if (!scope) return;
    const heading = () => (scope === panel ? document.getElementById("notif-heading") : document.querySelector("main h1"));
    const item = source.closest("[data-notification-id]");
    if (!item) return keepFocus(source, heading);
    const id = item.dataset.notificationId;
    if (source.matches(".notif-mark-unread")) return keepFocus(source, () => markButton(scope, id, "read"));
    if (!source.matches(".notif-mark-read")) return;
    const unread = [...scope.querySelectorAll("[data-notification-id].is-unread")].map((e) => e.dataset.notificationId);
    const at = unread.indexOf(id);
    const order = [...unread.slice(at + 1), ...unread.slice(0, Math.max(at, 0)).reverse()];
    keepFocus(source, () => order.map((other) => markButton(scope, other, "read")).find(Boolean) || heading());
  });

  // A way to find `element` again once the list holding it has been rendered anew.
  function sameControl(element) {
    if (element.id) return () => document.getElementById(element.id);
    const item = element.closest("[data-notification-id]");
    const kind = [...element.classList].find((name) => name.startsWith("notif-"));
    if (!item || !kind) return () => document.getElementById("notif-heading");
    const selector = `[data-notification-id="${item.dataset.notificationId}"] .${kind}`;
    return () => panel.querySelector(selector) || document.getElementById("notif-heading");
  }

  function focusOn(target) {
    if (!target) return;
    if (!target.hasAttribute("tabindex") && !target.matches("button, a[href], input, select, textarea")) {
      target.setAttribute("tabindex", "-1"); // a heading: focusable by script, not in the Tab order
    }
    target.focus();
  }

  function markButton(scope, id, which) {
    const item = scope.querySelector(`[data-notification-id="${id}"]`);
    return item && item.classList.contains("is-unread") === (which === "read") ? item.querySelector(`.notif-mark-${which}`) : null;
  }

  // Once `old` has left the page, focus what `choose` finds, unless something else took the focus.
  function keepFocus(old, choose) {
    const observer = new MutationObserver(() => {
      if (old.isConnected) return;
      observer.disconnect();
      if (document.activeElement && document.activeElement !== document.body) return;
      focusOn(choose());
    });
    observer.observe(document.body, { childList: true, subtree: true });
    setTimeout(() => observer.disconnect(), 15000); // the request failed: nothing was replaced
  }

  // ---- toasts and browser notifications -----------------------------------------------------

  // At most three toasts at once. One more folds the newest notification toast and itself into a
  // summary ("2 new notifications", a link to the inbox), which then counts everything after it.
  // Each toast stays `data-lifetime-ms` on #toasts (6 s), longer while hovered or focused, and has
  // a close button; Escape inside one closes it. Screen readers hear one polite live region
  // (#announcer), at most once a second, in summaries; the toasts themselves are not live regions.
  const MAX_TOASTS = 3;
  const TONES = {
    booking_confirmed: "success",
    payment_refunded: "success",
    payment_failed: "failure",
    booking_cancelled: "warning",
    event_cancelled: "warning",
  };
  const timers = new WeakMap(); // toast -> {remaining, started, timer, holds: Set}
  let summary = null; // {element, count}
  let opening = null; // {items, timer}: a (re)connection's replay, gathered until its count

  function lifetime() {
    return Number(toasts.dataset.lifetimeMs) || 6000;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function icon(name) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "toast-icon");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
    use.setAttribute("href", `/static/icons/notifications.svg#${name}`);
    svg.append(use);
    return svg;
  }

  // Texts are set with textContent: a title is what a user typed, never markup.
  // The initials of the person who caused it (decoration: their name is in the text).
  function avatar(initials, tone) {
    const circle = element("div", `toast-avatar avatar-${Number(tone) || 0}`, initials);
    circle.setAttribute("aria-hidden", "true");
    return circle;
  }

  function makeToast({ tone, iconName, kind, title, body, url, type, actorInitials, actorTone, actorName }) {
    const toast = element("div", `toast toast-${tone}`);
    if (type) toast.dataset.type = type;
    const text = element(url ? "a" : "div", "toast-text");
    if (url) text.href = url;
    if (kind) text.append(element("small", "toast-kind", actorName ? `${kind} · ${actorName}` : kind));
    text.append(element("strong", "", title));
    if (body) text.append(element("span", "", body));
    const close = element("button", "toast-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", `Dismiss: ${title}`);
    // A click from the keyboard (Enter, Space) has no pointer detail: focus then moves on.
    close.addEventListener("click", (event) => dismiss(toast, event.detail === 0));
    toast.append(actorInitials ? avatar(actorInitials, actorTone) : icon(iconName), text, close);
    toast.addEventListener("mouseenter", () => hold(toast, "hover"));
    toast.addEventListener("mouseleave", () => release(toast, "hover"));
    toast.addEventListener("focusin", () => hold(toast, "focus"));
    toast.addEventListener("focusout", (event) => {
      if (!toast.contains(event.relatedTarget)) release(toast, "focus");
    });
    return toast;
  }

  function show(toast) {
    toasts.append(toast);
    timers.set(toast, { remaining: lifetime(), started: 0, timer: 0, holds: new Set() });
    if (toasts.classList.contains("is-held")) hold(toast, "held");
    run(toast);
    arrange();
  }

  function run(toast) {
    const state = timers.get(toast);
    if (!state || state.holds.size || state.timer) return;
    state.started = Date.now();
    state.timer = setTimeout(() => dismiss(toast, false), Math.max(state.remaining, 1000));
  }

  function hold(toast, why) {
    const state = timers.get(toast);
    if (!state) return;
    state.holds.add(why);
    if (!state.timer) return;
    clearTimeout(state.timer);
    state.timer = 0;
    state.remaining -= Date.now() - state.started;
  }

  function release(toast, why) {
    timers.get(toast)?.holds.delete(why);
    run(toast);
  }

  function holdToasts(held) {
    if (toasts.classList.contains("is-held") === held) return;
    toasts.classList.toggle("is-held", held);
    for (const toast of toasts.children) (held ? hold : release)(toast, "held");
  }

  function dismiss(toast, byKeyboard) {
    if (!toast.isConnected) return;
    const hadFocus = toast.contains(document.activeElement);
    const next = toast.nextElementSibling || toast.previousElementSibling;
    clearTimeout(timers.get(toast)?.timer);
    timers.delete(toast);
    toast.remove();
    if (summary?.element === toast) summary = null;
    // Focus goes to the next toast, or back to the bell, never to the top of the page.
    if (byKeyboard && hadFocus) (next?.querySelector(".toast-close") || bell).focus();
    arrange();
  }

  toasts.addEventListener("keydown", (event) => {
    const toast = event.target.closest(".toast");
    if (event.key !== "Escape" || !toast) return;
    event.stopPropagation(); // the dropdown, if open, stays open
    dismiss(toast, true);
  });

  function setSummary(count) {
    const title = `${count} new notifications`;
    const link = summary.element.querySelector(".toast-text");
    link.querySelector("strong").textContent = title;
    summary.element.querySelector(".toast-close").setAttribute("aria-label", `Dismiss: ${title}`);
    summary.count = count;
    const state = timers.get(summary.element);
    if (state) state.remaining = lifetime(); // it grew: the full time again from now
    if (state?.timer) {
      clearTimeout(state.timer);
      state.timer = 0;
      run(summary.element);
    }
  }

  // A summary for `count` more notifications: grows the one shown, or takes a place of its own,
  // folding in the newest notification toast (not one being read: hovered or focused) when the
  // stack is full.
  function summarize(count) {
    if (summary?.element.isConnected) return setSummary(summary.count + count);
    let folded = 0;
    const shown = [...toasts.children];
    if (shown.length >= MAX_TOASTS) {
      const free = shown.filter((toast) => !["hover", "focus"].some((why) => timers.get(toast)?.holds.has(why)));
      const fold = free.filter((toast) => toast.dataset.type).pop();
      if (fold) folded = 1;
      dismiss(fold || free[0] || shown[0], false);
    }
    const toast = makeToast({ tone: "info", iconName: "bell", title: "", url: "/notifications" });
    toast.classList.add("toast-summary");
    summary = { element: toast, count: 0 };
    setSummary(count + folded);
    show(toast);
  }

  function toastFor(data) {
    if (summary?.element.isConnected || toasts.children.length >= MAX_TOASTS) return summarize(1);
    const { type, kind, title, body, url, actorInitials, actorTone, actorName } = data;
    const tone = TONES[type] || "info";
    show(makeToast({ tone, iconName: type, kind, title, body, url, type, actorInitials, actorTone, actorName }));
  }

  function showError(message) {
    if (toasts.children.length >= MAX_TOASTS) dismiss(toasts.firstElementChild, false);
    show(makeToast({ tone: "failure", iconName: "booking_cancelled", title: message }));
    say(message);
  }

  // A (re)connection replays what was missed, then sends a count: gather the replay, then show one
  // toast for one item, one summary for more.
  function beginOpening() {
    endOpening();
    opening = { items: [], timer: setTimeout(endOpening, 3000) };
  }

  function endOpening() {
    if (!opening) return;
    clearTimeout(opening.timer);
    const { items } = opening;
    opening = null;
    if (items.length === 1) toastFor(items[0]);
    else if (items.length > 1) summarize(items.length);
    announceItems(items);
  }

  // ---- the live region and the connection state ------------------------------------------------

  let unspoken = [];
  let spokeAt = 0;
  let speaking = 0;

  function say(text) {
    // Emptied first, so the same words twice are announced twice.
    announcer.textContent = "";
    setTimeout(() => (announcer.textContent = text), 50);
  }

  // New items are announced at most once a second, several as one summary; a burst arriving
  // within 0.4 s is one announcement.
  function announceItems(items) {
    if (!items.length) return;
    unspoken.push(...items);
    if (speaking) return;
    speaking = setTimeout(() => {
      speaking = 0;
      const items = unspoken;
      unspoken = [];
      spokeAt = Date.now();
      say(items.length === 1 ? `New notification: ${items[0].title}` : `${items.length} new notifications`);
    }, Math.max(400, spokeAt + 1000 - Date.now()));
  }

  const connection = element("div", "connection-status");
  connection.id = "connection-status";
  connection.hidden = true;
  connection.append(element("span", "connection-spinner"), element("span", "", "Reconnecting…"));
  connection.firstChild.setAttribute("aria-hidden", "true");
  topbar.append(connection);
  let downTimer = 0;

  function setConnection(up, failed) {
    if (up) {
      clearTimeout(downTimer);
      downTimer = 0;
      if (connection.hidden) return;
      connection.hidden = true;
      say("Live notifications are back.");
      return;
    }
    // Already shown, or already counting down (each retry announces itself again): only a failure
    // brings the moment forward.
    if (!connection.hidden || (downTimer && !failed)) return;
    clearTimeout(downTimer);
    downTimer = setTimeout(
      () => {
        downTimer = 0;
        connection.hidden = false;
        say("Reconnecting to live notifications…");
      },
      failed ? 0 : 4000,
    );
  }

  async function showSystemNotification(data) {
    if (!("Notification" in window) || Notification.permission !== "granted" || !document.hidden) return;
    if (!(await browserChannelWanted(data))) return;
    // The tag makes several hidden tabs of this browser show it once.
    const shown = new Notification(data.title, { body: data.body, tag: `tidings-${data.notificationId}` });
    shown.onclick = () => {
      window.focus();
      window.location.href = data.url;
      shown.close();
    };
  }

  // The person's preferences decide too: the type's "Browser" cell, and a muted event. Read when a
  // system notification is due (rarely: only in a hidden tab), so a change saved in another tab
  // or device applies to the very next one. If they cannot be read, the notification is shown.
  async function browserChannelWanted(data) {
    try {
      const answer = await fetch("/api/v1/me/preferences", { headers: { Accept: "application/json" } });
      if (!answer.ok) return true;
      const preferences = await answer.json();
      if (preferences.channels?.[data.type]?.browser === false) return false;
      return !(data.eventId && (preferences.muted_events || []).some((event) => String(event.id) === data.eventId));
    } catch (error) {
      return true;
    }
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
