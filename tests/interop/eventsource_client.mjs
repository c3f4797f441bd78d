// A WHATWG-compliant EventSource (the `eventsource` package) against Tidings'
// GET /api/v1/notifications/stream, authenticated with a Bearer token through its `fetch` option.
//
//   TIDINGS_BASE_URL=http://127.0.0.1:8000 TIDINGS_TOKEN=<jwt> node eventsource_client.mjs
//
// With TIDINGS_REFRESH_TOKEN it is a long-lived client on the refresh flow: when the server answers
// 401 (the access token expired between two connections), its fetch exchanges the refresh token
// at POST /api/v1/auth/refresh (rotating it) and sends the same request again with the new token.
//
// Prints one JSON object per line on stdout:
//   {"kind":"connect","n":N,"last_event_id":"7"|null}   each (re)connection, with the Last-Event-ID
//                                                       header the client itself chose to send
//   {"kind":"open"}                                     the stream was accepted
//   {"kind":"event","type":"new_notification","id":"7","data":{...}}   every event received
//   {"kind":"error","ready_state":0|2,...}              the stream failed or ended
//   {"kind":"refreshed","n":N,"expires_in":900}         a refresh after a 401
//   {"kind":"refresh_failed","status":401}              the refresh was refused: the session is over
// Reconnection and Last-Event-ID are entirely the library's: this script never reconnects itself.
// Runs until SIGTERM/SIGINT (or TIDINGS_MAX_SECONDS).
import { EventSource } from "eventsource";

const base = process.env.TIDINGS_BASE_URL;
let token = process.env.TIDINGS_TOKEN;
let refreshToken = process.env.TIDINGS_REFRESH_TOKEN;
const maxSeconds = Number(process.env.TIDINGS_MAX_SECONDS || 60);
if (!base || !token) {
  console.error("usage: TIDINGS_BASE_URL=http://host:port TIDINGS_TOKEN=<jwt> node eventsource_client.mjs");
  process.exit(2);
}

const emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
let connections = 0;
let refreshes = 0;

async function refresh() {
  const response = await fetch(new URL("/api/v1/auth/refresh", base), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: refreshToken }),
  });
  if (!response.ok) {
    emit({ kind: "refresh_failed", status: response.status });
    return false;
  }
  const body = await response.json();
  token = body.token;
  refreshToken = body.refresh_token; // rotated: the one sent is spent
  refreshes += 1;
  emit({ kind: "refreshed", n: refreshes, expires_in: body.expires_in });
  return true;
}

async function authorizedFetch(input, init) {
  const attempt = () => {
    const headers = new Headers(init?.headers);
    headers.set("Authorization", `Bearer ${token}`);
    connections += 1;
    emit({ kind: "connect", n: connections, last_event_id: headers.get("last-event-id") });
    return fetch(input, { ...init, headers });
  };
  const response = await attempt();
  if (response.status !== 401 || !refreshToken) return response;
  await response.body?.cancel();
  // The same request (same Last-Event-ID) with a fresh token. A refused refresh hands the 401 to
  // the library, which then gives up: the session was ended.
  return (await refresh()) ? attempt() : response;
}

const source = new EventSource(new URL("/api/v1/notifications/stream", base), { fetch: authorizedFetch });

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
