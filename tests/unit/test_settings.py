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
