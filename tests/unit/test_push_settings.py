"""Web Push settings: VAPID keys (generated in development, configured in production) and the
allow-list of push services the server may POST to."""

from __future__ import annotations

import base64

import pytest

from webapp.push_config import PushHosts, generate_private_key, public_key_of
from webapp.settings import SettingsError, load_settings

STRONG = "k3y-with-enough-entropy-for-production-use-9f8e7d6c"


def b64url_bytes(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def test_development_generates_one_vapid_key_pair_and_keeps_it():
    first = load_settings({"SECRET_KEY": STRONG})
    second = load_settings({"SECRET_KEY": STRONG})
    assert first.push_enabled
    assert first.vapid_private_key == second.vapid_private_key
    assert len(b64url_bytes(first.vapid_private_key or "")) == 32
    public = b64url_bytes(first.vapid_public_key or "")
    assert len(public) == 65 and public[0] == 4  # an uncompressed P-256 point, as browsers take it
    assert first.vapid_subject.startswith("mailto:")


def test_production_without_vapid_keys_runs_with_push_off():
    settings = load_settings({"TIDINGS_ENV": "production", "SECRET_KEY": STRONG})
    assert not settings.push_enabled
    assert settings.vapid_public_key is None


def test_production_takes_configured_keys_and_derives_a_missing_public_key():
    private = generate_private_key()
    settings = load_settings(
        {
            "TIDINGS_ENV": "production",
            "SECRET_KEY": STRONG,
            "VAPID_PRIVATE_KEY": private,
            "VAPID_SUBJECT": "mailto:ops@example.com",
        }
    )
    assert settings.push_enabled
    assert settings.vapid_public_key == public_key_of(private)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"VAPID_PRIVATE_KEY": "not a key!"}, "VAPID_PRIVATE_KEY"),
        ({"VAPID_PRIVATE_KEY": "AAAA"}, "VAPID_PRIVATE_KEY"),
        ({"VAPID_PUBLIC_KEY": "public-only"}, "VAPID_PRIVATE_KEY"),
        ({"VAPID_PUBLIC_KEY": public_key_of(generate_private_key())}, "VAPID_PUBLIC_KEY"),
        ({"VAPID_SUBJECT": "ops@example.com"}, "VAPID_SUBJECT"),
        ({"VAPID_SUBJECT": ""}, "VAPID_SUBJECT"),
    ],
)
def test_production_refuses_vapid_settings_that_cannot_work(env, named):
    base = {
        "TIDINGS_ENV": "production",
        "SECRET_KEY": STRONG,
        "VAPID_PRIVATE_KEY": generate_private_key(),
        "VAPID_SUBJECT": "https://tidings.example",
    }
    with pytest.raises(SettingsError, match=named):
        load_settings({**base, **env})


def test_the_push_services_allowed_by_default_are_the_big_browser_ones_over_https_only():
    hosts = load_settings({"SECRET_KEY": STRONG}).push_allowed_hosts
    assert hosts.allows("https://fcm.googleapis.com/fcm/send/abc")
    assert hosts.allows("https://updates.push.services.mozilla.com/wpush/v2/abc")
    assert hosts.allows("https://wns2-par02p.notify.windows.com/w/?token=abc")
    assert hosts.allows("https://web.push.apple.com/QGx")
    assert hosts.allows("https://api.push.apple.com/3/device/abc")
    for refused in [
        "http://fcm.googleapis.com/fcm/send/abc",  # no TLS
        "https://fcm.googleapis.com:8443/fcm/send/abc",  # another port
        "https://fcm.googleapis.com.evil.example/x",
        "https://notify.windows.com/x",  # the wildcard means a subdomain
        "https://127.0.0.1/x",
        "https://user@fcm.googleapis.com/x",  # credentials in the URL
        "https://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "not a url",
    ]:
        assert not hosts.allows(refused), refused


def test_an_entry_with_a_scheme_allows_exactly_that_origin_even_over_plain_http():
    hosts = PushHosts.parse("http://127.0.0.1:8123, fcm.googleapis.com")
    assert hosts.allows("http://127.0.0.1:8123/push/1")
    assert not hosts.allows("http://127.0.0.1:8124/push/1")
    assert not hosts.allows("https://127.0.0.1:8123/push/1")
    assert not hosts.allows("http://fcm.googleapis.com/x")


@pytest.mark.parametrize("bad", ["ftp://x.example", "http://", "*.", "https://a.example/path"])
def test_nonsense_push_hosts_are_refused(bad):
    with pytest.raises(SettingsError, match="PUSH_ALLOWED_HOSTS"):
        load_settings({"SECRET_KEY": STRONG, "PUSH_ALLOWED_HOSTS": bad})


def test_the_public_url_defaults_to_the_first_allowed_origin():
    assert load_settings({"SECRET_KEY": STRONG, "PORT": "8001"}).public_url == "http://127.0.0.1:8001"
    settings = load_settings({"SECRET_KEY": STRONG, "ALLOWED_ORIGINS": "https://a.example", "PUBLIC_URL": ""})
    assert settings.public_url == "https://a.example"
    assert load_settings({"SECRET_KEY": STRONG, "PUBLIC_URL": "https://t.example/"}).public_url == "https://t.example"
    with pytest.raises(SettingsError, match="PUBLIC_URL"):
        load_settings({"SECRET_KEY": STRONG, "PUBLIC_URL": "t.example"})
