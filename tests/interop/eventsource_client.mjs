// A WHATWG-compliant EventSource (the `eventsource` package) against Tidings'
// GET /api/v1/notifications/stream, authenticated with a Bearer token through its `fetch` option.
//
//   TIDINGS_BASE_URL=http://127.0.0.1:8000 TIDINGS_TOKEN=<jwt> node eventsource_client.mjs
//
// Prints one JSON object per line on stdout:
//   {"kind":"connect","n":N,"last_event_id":"7"|null}   each (re)connection, with the Last-Event-ID
//                                                       header the client itself chose to send
//   {"kind":"open"}                                     the stream was accepted
//   {"kind":"event","type":"new_notification","id":"7","data":{...}}   every event received
//   {"kind":"error","ready_state":0|2,...}              the stream failed or ended
// Reconnection and Last-Event-ID are entirely the library's: this script never reconnects itself.
// Runs until SIGTERM/SIGINT (or TIDINGS_MAX_SECONDS).
import { EventSource } from "eventsource";

const base = process.env.TIDINGS_BASE_URL;
const token = process.env.TIDINGS_TOKEN;
const maxSeconds = Number(process.env.TIDINGS_MAX_SECONDS || 60);
if (!base || !token) {
  console.error("usage: TIDINGS_BASE_URL=http://host:port TIDINGS_TOKEN=<jwt> node eventsource_client.mjs");
  process.exit(2);
}

const emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
let connections = 0;

const source = new EventSource(new URL("/api/v1/notifications/stream", base), {
  fetch: (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set("Authorization", `Bearer ${token}`);
    connections += 1;
    emit({ kind: "connect", n: connections, last_event_id: headers.get("last-event-id") });
    return fetch(input, { ...init, headers });
  },
});

source.addEventListener("open", () => emit({ kind: "open" }));
source.addEventListener("error", (event) =>
  emit({ kind: "error", ready_state: source.readyState, code: event.code ?? null, message: event.message ?? null }),
);
for (const type of ["new_notification", "notification_count", "notification_read", "reset", "message"]) {
  source.addEventListener(type, (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      data = { unparsed: event.data };
    }
    emit({ kind: "event", type, id: event.lastEventId, data });
  });
}

const stop = () => {
  source.close();
  setTimeout(() => process.exit(0), 20);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setTimeout(() => {
  emit({ kind: "timeout" });
  stop();
}, maxSeconds * 1000);
