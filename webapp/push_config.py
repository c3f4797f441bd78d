"""What Web Push needs from the configuration: the VAPID key pair and the push services the server
may send to. A plain module under webapp.settings, which reads both from the environment.

VAPID keys travel as browsers and push libraries write them: base64url without padding, the
private key as its 32-byte scalar, the public key as the 65-byte uncompressed P-256 point
(the `applicationServerKey` a page hands to `pushManager.subscribe`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# The push services of Chrome/Edge (FCM), Firefox (autopush), Edge on Windows (WNS) and Safari
# (Apple): a subscription whose endpoint is anywhere else is refused, since the server POSTs to
# whatever endpoint it stores (server-side request forgery).
DEFAULT_PUSH_HOSTS = (
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "*.notify.windows.com",
    "web.push.apple.com",
    "*.push.apple.com",
)


def b64url_decode(value: str) -> bytes:
    """Strict base64url (padding optional); ValueError for anything else."""
    if not value or any(c not in _B64URL for c in value.rstrip("=")):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def generate_private_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))


def public_key_of(private_key: str) -> str:
    """The public key of a private one; ValueError when it is not a P-256 private key."""
    raw = b64url_decode(private_key)
    if len(raw) != 32:
        raise ValueError("not 32 bytes")
    key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url_encode(point)


def is_p256_point(raw: bytes) -> bool:
    """Whether `raw` is an uncompressed point on P-256 (a subscription's p256dh key)."""
    if len(raw) != 65 or raw[0] != 4:
        return False
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Entry:
    host: str  # lower case; "*.example.com" matches any subdomain of example.com
    scheme: str = "https"
    port: int = 443


class PushHosts:
    """PUSH_ALLOWED_HOSTS: where subscription endpoints may point. An entry without a scheme
    (`fcm.googleapis.com`, `*.push.apple.com`) allows HTTPS on port 443 only; an entry with one
    (`http://127.0.0.1:8123`) allows exactly that scheme, host and port: the way to name a local
    push service for tests or an on-premises one. (A plain class: see TrustedProxies.)"""

    def __init__(self, entries: tuple[_Entry, ...]) -> None:
        self.entries = entries

    @classmethod
    def parse(cls, raw: str) -> PushHosts:
        entries = []
        for item in (part.strip().lower() for part in raw.split(",")):
            if not item:
                continue
            if "://" in item:
                parts = urlsplit(item)
                try:
                    port = parts.port or (443 if parts.scheme == "https" else 80)
                except ValueError:
                    port = 0
                if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or not port:
                    raise ValueError(f"{item!r} is not a host or an http(s) origin")
                entries.append(_Entry(parts.hostname, parts.scheme, port))
                continue
            name = item.removeprefix("*.")
            if not name or "/" in name or ":" in name or name.startswith(".") or name.endswith("."):
                raise ValueError(f"{item!r} is not a host or an http(s) origin")
            entries.append(_Entry(item))
        return cls(tuple(entries))

    def allows(self, endpoint: str) -> bool:
        try:
            parts = urlsplit(endpoint)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if parts.username is not None or parts.password is not None or not host:
            return False
        return any(
            parts.scheme == entry.scheme and port == entry.port and _host_matches(host, entry.host)
            for entry in self.entries
        )


def _host_matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".push.apple.com"
        return host.endswith(suffix) and len(host) > len(suffix) and not _is_ip(host)
    return host == pattern


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
