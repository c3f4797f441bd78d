from __future__ import annotations

import pytest

from webapp.settings import SettingsError, load_settings

STRONG = "k3y-with-enough-entropy-for-production-use-9f8e7d6c"


def test_production_refuses_a_missing_secret_key():
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load_settings({"TIDINGS_ENV": "production"})


@pytest.mark.parametrize("weak", ["short", "a" * 40, "abababababababababababababababab"])
def test_production_refuses_a_weak_secret_key(weak):
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load_settings({"TIDINGS_ENV": "production", "SECRET_KEY": weak})


def test_production_accepts_a_strong_key_and_reads_the_environment():
    settings = load_settings(
        {
            "TIDINGS_ENV": "production",
            "SECRET_KEY": STRONG,
            "DATABASE_URL": "postgresql+asyncpg://u@db/tidings",
            "REDIS_URL": "redis://cache:6379/0",
            "ALLOWED_ORIGINS": "https://a.example, https://b.example/",
            "HOST": "0.0.0.0",
            "PORT": "9000",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.production
    assert settings.database_url == "postgresql+asyncpg://u@db/tidings"
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 9000, "DEBUG")


def test_development_defaults_to_sqlite_under_var_and_a_kept_key():
    first = load_settings({})
    second = load_settings({})
    assert first.database_url.startswith("sqlite+aiosqlite:///") and first.database_url.endswith("var/tidings.db")
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert first.redis_url is None


@pytest.mark.parametrize("env", [{"TIDINGS_ENV": "staging"}, {"PORT": "eighty"}])
def test_nonsense_settings_are_refused(env):
    with pytest.raises(SettingsError):
        load_settings(env)


def test_the_redis_namespace_derives_from_the_database_without_its_password():
    def namespace(url: str) -> str:
        return load_settings({"SECRET_KEY": STRONG, "DATABASE_URL": url}).redis_namespace

    one = namespace("postgresql+asyncpg://app:first-password@db/tidings")
    assert one.startswith("tidings:") and "first-password" not in one
    assert namespace("postgresql+asyncpg://app:rotated-password@db/tidings") == one  # a new password, same data
    assert namespace("postgresql+asyncpg://app:first-password@db/other") != one
    assert namespace("sqlite+aiosqlite:////srv/a/tidings.db") != namespace("sqlite+aiosqlite:////srv/b/tidings.db")


def test_jobs_namespace_follows_the_redis_namespace_unless_set():
    settings = load_settings({"SECRET_KEY": STRONG, "REDIS_NAMESPACE": "shop-eu"})
    assert (settings.redis_namespace, settings.jobs_namespace) == ("shop-eu", "shop-eu:jobs")
    settings = load_settings({"SECRET_KEY": STRONG, "REDIS_NAMESPACE": "shop-eu", "JOBS_NAMESPACE": "dramatiq"})
    assert (settings.redis_namespace, settings.jobs_namespace) == ("shop-eu", "dramatiq")


def test_every_redis_client_gets_connect_and_read_timeouts():
    assert load_settings({"SECRET_KEY": STRONG}).redis_options == {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
    settings = load_settings({"SECRET_KEY": STRONG, "REDIS_TIMEOUT_SECONDS": "0.5"})
    assert settings.redis_options == {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    with pytest.raises(SettingsError, match="REDIS_TIMEOUT_SECONDS"):
        load_settings({"SECRET_KEY": STRONG, "REDIS_TIMEOUT_SECONDS": "0"})


@pytest.mark.parametrize(
    "weak",
    [
        "abcdefghijklmnopqrstuvwxyz0123456789",  # sequential
        "zyxwvutsrqponmlkjihgfedcba9876543210",  # sequential, backwards
        "0123456789" * 4,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa9f8e7d6c5b4a",  # mostly one repeated character
        "Tr0ub4dor&3" * 4,  # a short pattern repeated
        "passwordpasswordpassword1234567890",  # low entropy
    ],
)
def test_production_refuses_repeated_sequential_or_low_entropy_keys(weak):
    with pytest.raises(SettingsError, match="SECRET_KEY is too weak"):
        load_settings({"TIDINGS_ENV": "production", "SECRET_KEY": weak})


def test_production_accepts_every_generated_key():
    import secrets

    for _ in range(300):
        for key in (secrets.token_urlsafe(48), secrets.token_urlsafe(32), secrets.token_hex(16), secrets.token_hex(32)):
            assert load_settings({"TIDINGS_ENV": "production", "SECRET_KEY": key}).secret_key == key


def test_development_keeps_working_with_the_test_suites_key_and_its_generated_key():
    from tests.conftest import TEST_SECRET
    from webapp.settings import secret_key_weakness

    assert load_settings({"SECRET_KEY": TEST_SECRET}).secret_key == TEST_SECRET
    assert secret_key_weakness(load_settings({}).secret_key) is None  # development's generated key


def test_trusted_proxies_are_addresses_and_networks():
    import ipaddress

    settings = load_settings({"SECRET_KEY": STRONG, "TRUSTED_PROXIES": " 10.0.0.1, 192.168.0.0/16,::1 "})
    assert settings.trusted_proxies.networks == (
        ipaddress.ip_network("10.0.0.1/32"),
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("::1/128"),
    )
    assert "192.168.4.2" in settings.trusted_proxies and "10.0.0.2" not in settings.trusted_proxies
    assert load_settings({"SECRET_KEY": STRONG}).trusted_proxies.networks == ()
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        load_settings({"SECRET_KEY": STRONG, "TRUSTED_PROXIES": "10.0.0.1,proxy.local"})


def test_ops_samples_are_taken_every_ten_seconds_unless_set():
    assert load_settings({}).ops_sample_seconds == 10.0
    assert load_settings({"OPS_SAMPLE_SECONDS": "0.25"}).ops_sample_seconds == 0.25
    for bad in ("0", "-1", "often"):
        with pytest.raises(SettingsError, match="OPS_SAMPLE_SECONDS"):
            load_settings({"OPS_SAMPLE_SECONDS": bad})
