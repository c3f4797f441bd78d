"""Sending one push to one device with pywebpush: encrypted for the device (aes128gcm, RFC 8291),
signed for the push service (VAPID, RFC 8292). Blocking (requests): callers run it in a thread.

The endpoint is checked against the allow-list again at send time (the list may have shrunk
since the device subscribed), and redirects are not followed: a push service answers, it does
not send the server elsewhere.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Literal

import requests
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from webapp import metrics
from webapp.push.messages import PushMessage
from webapp.push_config import PushHosts

log = logging.getLogger("tidings.push")
GONE_STATUSES = frozenset({404, 410})  # the browser dropped the subscription: it never comes back

Outcome = Literal["sent", "gone", "failed", "refused"]


@dataclass(frozen=True, slots=True)
class Device:
    id: int
    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True, slots=True)
class Vapid02Key:
    """The server's VAPID identity: its private key and the contact (`sub`) push services see."""

    private_key: str
    subject: str

    def signer(self) -> Vapid:
        return Vapid.from_raw(self.private_key.encode())


def send(device: Device, message: PushMessage, key: Vapid02Key, allowed: PushHosts, timeout: float) -> Outcome:
    if not allowed.allows(device.endpoint):
        log.warning("push subscription %s points at a push service no longer allowed; not sent", device.id)
        return "refused"
    session = requests.Session()
    session.max_redirects = 0
    try:
        webpush(
            subscription_info={"endpoint": device.endpoint, "keys": {"p256dh": device.p256dh, "auth": device.auth}},
            data=json.dumps(message.payload, separators=(",", ":")),
            vapid_private_key=key.signer(),
            vapid_claims={"sub": key.subject},  # a new dict each time: pywebpush writes aud and exp into it
            ttl=message.ttl,
            headers=message.headers,
            content_encoding="aes128gcm",
            timeout=timeout,
            requests_session=session,
        )
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in GONE_STATUSES:
            return "gone"
        metrics.PUSH_FAILED.labels("status").inc()
        # The endpoint is a capability URL: its host is enough to tell which service refused.
        log.warning("push service answered %s for subscription %s", status, device.id)
        return "failed"
    except requests.RequestException as exc:
        metrics.PUSH_FAILED.labels("timeout" if isinstance(exc, requests.Timeout) else "network").inc()
        log.warning("push to subscription %s failed: %s", device.id, type(exc).__name__)
        return "failed"
    finally:
        session.close()
    metrics.PUSH_SENT.inc()
    return "sent"
