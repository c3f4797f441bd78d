"""Which address the rate limits key on, from the peer and X-Forwarded-For (TRUSTED_PROXIES)."""

from __future__ import annotations

from webapp.http import forwarded_client
from webapp.settings import TrustedProxies

PROXIES = TrustedProxies.parse("10.0.0.0/24, ::1")
NONE = TrustedProxies.parse("")


def test_without_trusted_proxies_the_header_is_ignored():
    assert forwarded_client("10.0.0.5", ["203.0.113.9"], NONE) == "10.0.0.5"


def test_a_peer_that_is_not_a_proxy_is_the_client_whatever_it_claims():
    assert forwarded_client("198.51.100.7", ["203.0.113.9"], PROXIES) == "198.51.100.7"


def test_a_trusted_proxy_names_the_client():
    assert forwarded_client("10.0.0.5", ["203.0.113.9"], PROXIES) == "203.0.113.9"
    assert forwarded_client("::1", ["2001:db8::1"], PROXIES) == "2001:db8::1"


def test_the_walk_stops_at_the_first_address_that_is_not_a_proxy():
    # client-written junk, the real client, then a second proxy of ours
    header = ["6.6.6.6, 203.0.113.9, 10.0.0.7"]
    assert forwarded_client("10.0.0.5", header, PROXIES) == "203.0.113.9"
    # several header lines are one list, in order
    assert forwarded_client("10.0.0.5", ["6.6.6.6", "203.0.113.9"], PROXIES) == "203.0.113.9"


def test_garbage_in_the_header_never_becomes_the_key():
    assert forwarded_client("10.0.0.5", ["not-an-ip"], PROXIES) == "10.0.0.5"
    assert forwarded_client("10.0.0.5", ["203.0.113.9, junk"], PROXIES) == "10.0.0.5"
    assert forwarded_client("10.0.0.5", [], PROXIES) == "10.0.0.5"
