// A real ActionCable consumer (@rails/actioncable, the browser client Rails ships) against Tidings'
// WS /cable, run under Node with the `ws` package as its WebSocket.
//
//   TIDINGS_BASE_URL=http://127.0.0.1:8000 TIDINGS_TOKEN=<jwt> node actioncable_client.mjs
//
// Prints one JSON object per line on stdout:
//   {"kind":"open","protocol":...}        the WebSocket opened (negotiated subprotocol)
//   {"kind":"sent","data":{...}}          every frame the consumer sent (subscribe, message, ...)
//   {"kind":"frame","frame":{...}}        every frame the server sent, as received (welcome, ping, ...)
//   {"kind":"connected"|"disconnected"|"rejected", ...}   the subscription's callbacks
//   {"kind":"received","message":{...}}   a channel message delivered to the subscription
//   {"kind":"performed","action":"mark_as_read","id":N}   after perform() on the first new_notification
//   {"kind":"close","code":N}             the WebSocket closed
// ActionCable's own debug log goes to stderr. Runs until SIGTERM/SIGINT (or TIDINGS_MAX_SECONDS).
//
// Optional, for the resume test:
//   TIDINGS_RESUME_FROM_SEQ=<seq>  a reader that resumes by seq (and performs nothing): it subscribes
//       with `last_seq`, and when disconnected sets its subscription's identifier to the seq of the
//       last new_notification it received, which ActionCable re-sends when it resubscribes after
//       reconnecting. A notification at or below that seq is dropped ({"kind":"duplicate"}).
//   TIDINGS_SOCKET_FD=<fd>  the first WebSocket runs over this inherited, connected TCP socket (the
//       test makes it with a small receive buffer, which Node cannot set); later ones connect anew.
//   stdin lines: "pause" stops reading the socket right after the next ping ({"kind":"paused"}),
//       "resume" reads again ({"kind":"resumed"}).
import ActionCable from "@rails/actioncable";
import net from "node:net";
import readline from "node:readline";
import WebSocket from "ws";

const base = process.env.TIDINGS_BASE_URL;
const token = process.env.TIDINGS_TOKEN;
const maxSeconds = Number(process.env.TIDINGS_MAX_SECONDS || 60);
if (!base || !token) {
  console.error("usage: TIDINGS_BASE_URL=http://host:port TIDINGS_TOKEN=<jwt> node actioncable_client.mjs");
  process.exit(2);
}

const emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const resumeFrom = process.env.TIDINGS_RESUME_FROM_SEQ;
let inheritedFd = process.env.TIDINGS_SOCKET_FD ? Number(process.env.TIDINGS_SOCKET_FD) : null;
let current = null; // the newest WebSocket
let pauseAfterPing = false;

// ActionCable is browser code. Node 20 has no global WebSocket (the `ws` package stands in) and no
// window-level addEventListener, which ConnectionMonitor uses for `visibilitychange`.
globalThis.addEventListener ??= () => {};
globalThis.removeEventListener ??= () => {};

class RecordingWebSocket extends WebSocket {
  constructor(url, protocols) {
    const options = {};
    if (inheritedFd !== null) {
      const fd = inheritedFd;
      inheritedFd = null; // a socket serves one connection; reconnects dial as usual
      options.createConnection = () => new net.Socket({ fd, readable: true, writable: true });
    }
    super(url, protocols, options);
    current = this;
    // Registered before ActionCable sets onmessage, so each frame is printed before it is handled.
    this.on("open", () => emit({ kind: "open", protocol: this.protocol }));
    this.on("message", (data) => {
      const text = String(data);
      let frame = null;
      try {
        frame = JSON.parse(text);
        emit({ kind: "frame", frame });
      } catch {
        emit({ kind: "frame", raw: text });
      }
      if (pauseAfterPing && frame?.type === "ping") {
        pauseAfterPing = false;
        this._socket.pause(); // the kernel buffers fill, then the server cannot send any more
        emit({ kind: "paused" });
      }
    });
    this.on("close", (code) => emit({ kind: "close", code }));
  }

  send(data, ...rest) {
    emit({ kind: "sent", data: JSON.parse(data) });
    return super.send(data, ...rest);
  }
}

readline.createInterface({ input: process.stdin }).on("line", (command) => {
  if (command === "pause") {
    pauseAfterPing = true;
  } else if (command === "resume" && current?._socket) {
    current._socket.resume();
    emit({ kind: "resumed" });
  }
});

ActionCable.adapters.WebSocket = RecordingWebSocket;
ActionCable.adapters.logger = { log: (...args) => console.error(...args) };
ActionCable.logger.enabled = true;

const url = new URL("/cable", base);
url.protocol = url.protocol.replace(/^http/, "ws");
url.searchParams.set("token", token);

const consumer = ActionCable.createConsumer(url.toString());
// A plain consumer (no TIDINGS_RESUME_FROM_SEQ) marks the first notification read; a resuming one
// only reads.
let performed = resumeFrom !== undefined;
// The seq of the last notification received. ActionCable re-sends `subscription.identifier` as it
// is when it resubscribes after a reconnect, but routes incoming frames by that same string, so it
// may change only while no socket is open: in disconnected(), never while connected.
let lastSeq = resumeFrom === undefined ? null : Number(resumeFrom);
const params = (seq) => (seq === null ? { channel: "NotificationsChannel" } : { channel: "NotificationsChannel", last_seq: seq });

consumer.subscriptions.create(
  params(lastSeq),
  {
    connected(details) {
      emit({ kind: "connected", reconnected: Boolean(details?.reconnected) });
    },
    disconnected(details) {
      if (lastSeq !== null) {
        this.identifier = JSON.stringify(params(lastSeq));
      }
      emit({ kind: "disconnected", willAttemptReconnect: Boolean(details?.willAttemptReconnect), identifier: this.identifier });
    },
    rejected() {
      emit({ kind: "rejected" });
    },
    received(message) {
      if (lastSeq !== null && message?.type === "new_notification") {
        // A replay from an older position repeats what this reader has (ActionCable's own reopen of
        // a stale connection may call no disconnected()): each notification is applied once, by seq.
        if (message.notification.seq <= lastSeq) {
          emit({ kind: "duplicate", seq: message.notification.seq });
          return;
        }
        lastSeq = message.notification.seq;
      }
      emit({ kind: "received", message });
      if (!performed && message?.type === "new_notification") {
        performed = true;
        const id = message.notification.id;
        this.perform("mark_as_read", { id });
        emit({ kind: "performed", action: "mark_as_read", id });
      }
    },
  },
);

const stop = () => {
  consumer.disconnect();
  setTimeout(() => process.exit(0), 50);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setTimeout(() => {
  emit({ kind: "timeout" });
  stop();
}, maxSeconds * 1000);
