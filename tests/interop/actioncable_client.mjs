// A real ActionCable consumer (@rails/actioncable, the browser client Rails ships) against Tidings'
// WS /cable, run under Node with the `ws` package as its WebSocket.
//
//   TIDINGS_BASE_URL=http://127.0.0.1:8000 TIDINGS_TOKEN=<jwt> node actioncable_client.mjs
//
// Prints one JSON object per line on stdout:
//   {"kind":"open","protocol":...}        the WebSocket opened (negotiated subprotocol)
//   {"kind":"frame","frame":{...}}        every frame the server sent, as received (welcome, ping, ...)
//   {"kind":"connected"|"disconnected"|"rejected", ...}   the subscription's callbacks
//   {"kind":"received","message":{...}}   a channel message delivered to the subscription
//   {"kind":"performed","action":"mark_as_read","id":N}   after perform() on the first new_notification
//   {"kind":"close","code":N}             the WebSocket closed
// ActionCable's own debug log goes to stderr. Runs until SIGTERM/SIGINT (or TIDINGS_MAX_SECONDS).
import ActionCable from "@rails/actioncable";
import WebSocket from "ws";

const base = process.env.TIDINGS_BASE_URL;
const token = process.env.TIDINGS_TOKEN;
const maxSeconds = Number(process.env.TIDINGS_MAX_SECONDS || 60);
if (!base || !token) {
  console.error("usage: TIDINGS_BASE_URL=http://host:port TIDINGS_TOKEN=<jwt> node actioncable_client.mjs");
  process.exit(2);
}

const emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

// ActionCable is browser code. Node 20 has no global WebSocket (the `ws` package stands in) and no
// window-level addEventListener, which ConnectionMonitor uses for `visibilitychange`.
globalThis.addEventListener ??= () => {};
globalThis.removeEventListener ??= () => {};

class RecordingWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    // Registered before ActionCable sets onmessage, so each frame is printed before it is handled.
    this.on("open", () => emit({ kind: "open", protocol: this.protocol }));
    this.on("message", (data) => {
      const text = String(data);
      try {
        emit({ kind: "frame", frame: JSON.parse(text) });
      } catch {
        emit({ kind: "frame", raw: text });
      }
    });
    this.on("close", (code) => emit({ kind: "close", code }));
  }
}

ActionCable.adapters.WebSocket = RecordingWebSocket;
ActionCable.adapters.logger = { log: (...args) => console.error(...args) };
ActionCable.logger.enabled = true;

const url = new URL("/cable", base);
url.protocol = url.protocol.replace(/^http/, "ws");
url.searchParams.set("token", token);

const consumer = ActionCable.createConsumer(url.toString());
let performed = false;

consumer.subscriptions.create(
  { channel: "NotificationsChannel" },
  {
    connected(details) {
      emit({ kind: "connected", reconnected: Boolean(details?.reconnected) });
    },
    disconnected(details) {
      emit({ kind: "disconnected", willAttemptReconnect: Boolean(details?.willAttemptReconnect) });
    },
    rejected() {
      emit({ kind: "rejected" });
    },
    received(message) {
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
