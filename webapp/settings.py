"""Settings, read once from the environment (DESIGN.md §6)."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from webapp.push_config import DEFAULT_PUSH_HOSTS, PushHosts, generate_private_key, public_key_of

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_DISTINCT = 8
MIN_SECRET_KEY_BITS = 80  # estimated; a 32-character hex key (128 real bits) scores 98 to 125
# Of characters that continue a run (aaa, 123, cba) or repeat an earlier 4 characters: a random
# key has about 1 % of them.
MAX_SECRET_KEY_PATTERN_SHARE = 1 / 3


class SettingsError(RuntimeError):
    """The environment describes a configuration Tidings refuses to run with."""


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long to wait for a connection and for one statement (or lock) before giving up."""

    connect_seconds: float = 3.0
    statement_seconds: float = 5.0


class TrustedProxies:
    """TRUSTED_PROXIES: the reverse proxies whose X-Forwarded-For is believed. (A plain class:
    the settings are a dependency, whose field types the web framework inspects.)"""

    def __init__(self, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> None:
        self.networks = networks

    def __contains__(self, address: object) -> bool:
        try:
            ip = ipaddress.ip_address(str(address))
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    @classmethod
    def parse(cls, raw: str) -> TrustedProxies:
        networks = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise SettingsError(f"TRUSTED_PROXIES: {item!r} is not an IP address or network") from None
        return cls(tuple(networks))


@dataclass(frozen=True)
class Settings:
    env: str
    database_url: str
    redis_url: str | None
    secret_key: str
    allowed_origins: tuple[str, ...]
    host: str
    port: int
    log_level: str
    # A session's access tokens (JWTs, checked without a database read) live this long; its
    # rotating refresh token this many days after its last use.
    access_token_seconds: int = 900
    refresh_token_days: int = 14
    # Password checks (login, password change), counted before they run: per account and
    # address, per address across accounts, and a slower one per account from everywhere.
    login_attempts_per_window: int = 5
    login_window_seconds: int = 300
    login_attempts_per_address: int = 30
    login_attempts_per_account_per_hour: int = 100
    registrations_per_hour: int = 10
    invitations_per_hour: int = 30
    # Peers whose X-Forwarded-For is believed (reverse proxies); nobody else's.
    trusted_proxies: TrustedProxies = field(default_factory=lambda: TrustedProxies(()))
    stream_heartbeat_seconds: float = 15.0
    stream_max_lifetime_seconds: float = 3600.0
    stream_replay_limit: int = 500
    stream_max_connections_per_user: int = 10
    stream_queue_size: int = 256
    stream_resync_seconds: float = 30.0
    # Delivery reports: how often each web process writes the "delivered live" times it collected,
    # and how often an open report re-counts its numbers (sending them only when they changed).
    delivery_flush_seconds: float = 1.0
    delivery_report_refresh_seconds: float = 1.0
    announcements_per_hour: int = 10
    db_connect_timeout_seconds: float = 3.0
    db_statement_timeout_seconds: float = 5.0
    # Prefix of every Redis key and channel of this deployment (see default_redis_namespace).
    redis_namespace: str = "tidings"
    jobs_namespace: str = "tidings:jobs"
    # Connect and read timeout of every Redis call: a hung server costs a request this long, not forever.
    redis_timeout_seconds: float = 2.0
    # How long an unpaid booking holds its seats before the scheduler releases them.
    payment_hold_minutes: int = 15
    # GET /metrics: with a token, only `Authorization: Bearer <token>`; without, loopback clients only.
    metrics_token: str | None = None
    # `dramatiq jobs` worker processes serve their metrics here (the next free port for each
    # further process); unset: no exporter. Embedded workers show theirs in the web /metrics.
    worker_metrics_port: int | None = None
    # `tidings scheduler` serves its metrics here; unset: no exporter. The embedded scheduler's
    # numbers are in the web /metrics.
    scheduler_metrics_port: int | None = None
    # Log lines: "json" (one object per line; the production default) or "text".
    log_format: str = "text"
    # Jobs (jobs/): retries and their backoff, time limit, Redis broker upkeep, fan-out chunks,
    # embedded worker threads, the scheduler's interval and the outbox sweep (README table).
    jobs_max_retries: int = 8
    jobs_min_backoff_ms: int = 500
    jobs_max_backoff_ms: int = 300000
    jobs_time_limit_ms: int = 120000
    jobs_heartbeat_timeout_ms: int = 15000
    jobs_maintenance_chance: int = 1000
    jobs_fanout_chunk_size: int = 1000
    embedded_worker_threads: int = 2
    scheduler_interval_seconds: float = 15.0
    review_request_delay_minutes: float = 120.0
    outbox_grace_seconds: float = 30.0
    outbox_redeliver_seconds: float = 30.0
    outbox_max_attempts: int = 8
    outbox_retention_days: float = 7.0
    # Retention (jobs/retention.py): sent reminders and expired notifications are purged this many
    # days on, at most this many rows per table and tick.
    retention_reminders_days: float = 30.0
    retention_notifications_days: float = 30.0
    retention_batch_size: int = 1000
    # Every process records a sample of its counters and gauges for the operations page this often.
    ops_sample_seconds: float = 10.0
    # Where links in emails and pushes point: the site as its users reach it.
    public_url: str = "http://127.0.0.1:8000"
    # Web Push (webapp/push): the VAPID key pair (None: push is off), the contact it names, the
    # push services subscriptions may point at, and how long one send may take.
    vapid_private_key: str | None = None
    vapid_public_key: str | None = None
    vapid_subject: str = "mailto:tidings@localhost"
    push_allowed_hosts: PushHosts = field(default_factory=lambda: PushHosts.parse(",".join(DEFAULT_PUSH_HOSTS)))
    push_timeout_seconds: float = 10.0
    # Email (webapp.mail): the server (smtp://user:pass@host:port, smtps:// for TLS from the first
    # byte, ?starttls=true to upgrade), the sender, how long a notification may stay unseen before
    # the digest tells it, and each SMTP exchange's timeout. Without SMTP_URL, development writes
    # mail to `mail_dir` (shown at /dev/mail) and production sends none.
    smtp_url: str | None = field(default=None, repr=False)  # may hold a password
    email_from: str = "Tidings <no-reply@localhost>"
    email_digest_delay_minutes: float = 30.0
    smtp_timeout_seconds: float = 15.0
    mail_dir: Path = field(default=VAR_DIR / "mail")
    templates_dir: Path = field(default=PROJECT_ROOT / "templates")
    static_dir: Path = field(default=PROJECT_ROOT / "static")

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def push_enabled(self) -> bool:
        return self.vapid_private_key is not None and self.vapid_public_key is not None

    @property
    def email_enabled(self) -> bool:
        """Production sends email only through a configured server; development always has its outbox."""
        return bool(self.smtp_url) or not self.production

    @property
    def database_timeouts(self) -> DatabaseTimeouts:
        return DatabaseTimeouts(self.db_connect_timeout_seconds, self.db_statement_timeout_seconds)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def redis_options(self) -> dict[str, Any]:
        """Keyword arguments for every Redis client (`Redis.from_url(url, **redis_options)`)."""
        return {"socket_timeout": self.redis_timeout_seconds, "socket_connect_timeout": self.redis_timeout_seconds}


def default_redis_namespace(database_url: str) -> str:
    """Deployments that share a Redis server but not a database must not see each other's keys:
    the default namespace is a short hash of the database URL (without its password, so
    rotating the password keeps the namespace)."""
    try:
        url = make_url(database_url)._replace(password=None).render_as_string(hide_password=False)
    except ArgumentError:  # an unparsable URL is refused later by the engine itself
        url = database_url
    return "tidings:" + hashlib.sha256(url.encode()).hexdigest()[:12]


def _development_secret_key() -> str:
    """Development keeps one generated key under var/ so sessions survive restarts."""
    VAR_DIR.mkdir(exist_ok=True)
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _development_vapid_key() -> str:
    """Development keeps one generated VAPID key under var/: a new key would orphan every
    browser subscription made with the old one."""
    VAR_DIR.mkdir(exist_ok=True)
    path = VAR_DIR / "vapid_private_key"
    if not path.exists():
        path.write_text(generate_private_key())
        path.chmod(0o600)
    return path.read_text().strip()


def _vapid(env: dict[str, str] | os._Environ[str], production: bool) -> tuple[str | None, str | None, str]:
    """(private key, public key, subject). Production without VAPID_PRIVATE_KEY runs with push
    off (the page says so); keys or a subject that cannot work stop the start instead of failing
    every push later."""
    private = env.get("VAPID_PRIVATE_KEY", "").strip()
    configured_public = env.get("VAPID_PUBLIC_KEY", "").strip()
    # Development has a placeholder contact; production must name a real one.
    subject = env.get("VAPID_SUBJECT", "" if production else "mailto:tidings@localhost").strip()
    if not private:
        if configured_public:
            raise SettingsError("VAPID_PUBLIC_KEY is set without VAPID_PRIVATE_KEY")
        if production:
            return None, None, subject
        private = _development_vapid_key()
    try:
        public = public_key_of(private)
    except ValueError:
        raise SettingsError(
            "VAPID_PRIVATE_KEY must be a P-256 private key: 32 bytes in base64url (see README, Web Push)"
        ) from None
    if configured_public and configured_public.rstrip("=") != public:
        raise SettingsError("VAPID_PUBLIC_KEY does not belong to VAPID_PRIVATE_KEY")
    if not (re.fullmatch(r"mailto:[^@\s]+@[^@\s]+", subject) or re.fullmatch(r"https://[^\s/]+[^\s]*", subject)):
        raise SettingsError("VAPID_SUBJECT must be a mailto: address or an https: URL (push services ask for one)")
    return private, public, subject


def secret_key_weakness(key: str) -> str | None:
    """Why a production SECRET_KEY is too easy to guess, or None. The checks are estimates, so
    they are kept loose enough that any generated random key passes (token_urlsafe, token_hex)."""
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"it is shorter than {MIN_SECRET_KEY_LENGTH} characters"
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        return f"it uses fewer than {MIN_SECRET_KEY_DISTINCT} different characters"
    patterned = set()
    for i in range(2, len(key)):
        a, b, c = (ord(ch) for ch in key[i - 2 : i + 1])
        if c - b == b - a and abs(b - a) <= 1:
            patterned.add(i)  # continues a run
    for i in range(4, len(key) - 3):
        if key[i : i + 4] in key[: i + 3]:
            patterned.update(range(i, i + 4))  # repeats something said before
    if len(patterned) > len(key) * MAX_SECRET_KEY_PATTERN_SHARE:
        return "it is made of repeated or sequential characters (like aaaa, 1234 or abcabc)"
    counts = Counter(key)
    bits = -sum(n * math.log2(n / len(key)) for n in counts.values())
    if bits < MIN_SECRET_KEY_BITS:
        return f"it carries an estimated {bits:.0f} bits of randomness, under {MIN_SECRET_KEY_BITS}"
    return None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    mode = env.get("TIDINGS_ENV", "development").strip().lower()
    if mode not in {"development", "production"}:
        raise SettingsError("TIDINGS_ENV must be 'development' or 'production'")
    secret_key = env.get("SECRET_KEY", "")
    if mode == "production":
        weakness = secret_key_weakness(secret_key)
        if weakness:
            raise SettingsError(
                f"SECRET_KEY is too weak for production: {weakness}. Generate one, e.g. "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
    elif not secret_key:
        secret_key = _development_secret_key()

    def number(name: str, default: float, kind: type = int, zero_allowed: bool = False) -> Any:
        raw = env.get(name, "")
        try:
            value = kind(raw) if raw else default
        except ValueError:
            raise SettingsError(f"{name} must be a number") from None
        if value < 0 or (value == 0 and not zero_allowed):
            raise SettingsError(f"{name} must be {'zero or more' if zero_allowed else 'positive'}")
        return value

    port = env.get("PORT", "8000")
    if not port.isdigit():
        raise SettingsError("PORT must be a number")
    host = env.get("HOST", "127.0.0.1")
    default_origins = f"http://127.0.0.1:{port},http://localhost:{port}"
    database_url = env.get("DATABASE_URL") or f"sqlite+aiosqlite:///{VAR_DIR / 'tidings.db'}"
    redis_namespace = env.get("REDIS_NAMESPACE", "").strip().rstrip(":") or default_redis_namespace(database_url)
    log_format = env.get("LOG_FORMAT", "json" if mode == "production" else "text").strip().lower()
    if log_format not in {"json", "text"}:
        raise SettingsError("LOG_FORMAT must be 'json' or 'text'")
    origins = tuple(o.strip().rstrip("/") for o in env.get("ALLOWED_ORIGINS", default_origins).split(",") if o.strip())
    smtp_url = env.get("SMTP_URL", "").strip() or None
    if smtp_url and not smtp_url.startswith(("smtp://", "smtps://")):
        raise SettingsError("SMTP_URL must start with smtp:// or smtps://")
    public_url = (env.get("PUBLIC_URL", "").strip() or (origins[0] if origins else f"http://{host}:{port}")).rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise SettingsError("PUBLIC_URL must start with http:// or https://")
    vapid_private_key, vapid_public_key, vapid_subject = _vapid(env, mode == "production")
    try:
        push_hosts = PushHosts.parse(env.get("PUSH_ALLOWED_HOSTS", "") or ",".join(DEFAULT_PUSH_HOSTS))
    except ValueError as exc:
        raise SettingsError(f"PUSH_ALLOWED_HOSTS: {exc}") from None
    return Settings(
        env=mode,
        database_url=database_url,
        redis_url=env.get("REDIS_URL") or None,
        secret_key=secret_key,
        allowed_origins=origins,
        host=host,
        port=int(port),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        access_token_seconds=number("ACCESS_TOKEN_SECONDS", 900),
        refresh_token_days=number("REFRESH_TOKEN_DAYS", 14),
        stream_heartbeat_seconds=number("STREAM_HEARTBEAT_SECONDS", 15.0, float),
        stream_max_lifetime_seconds=number("STREAM_MAX_LIFETIME_SECONDS", 3600.0, float),
        stream_replay_limit=number("STREAM_REPLAY_LIMIT", 500),
        stream_max_connections_per_user=number("STREAM_MAX_CONNECTIONS_PER_USER", 10),
        stream_queue_size=number("STREAM_QUEUE_SIZE", 256),
        stream_resync_seconds=number("STREAM_RESYNC_SECONDS", 30.0, float),
        delivery_flush_seconds=number("DELIVERY_FLUSH_SECONDS", 1.0, float),
        delivery_report_refresh_seconds=number("DELIVERY_REPORT_REFRESH_SECONDS", 1.0, float),
        announcements_per_hour=number("ANNOUNCEMENTS_PER_HOUR", 10),
        db_connect_timeout_seconds=number("DB_CONNECT_TIMEOUT_SECONDS", 3.0, float),
        db_statement_timeout_seconds=number("DB_STATEMENT_TIMEOUT_SECONDS", 5.0, float),
        redis_namespace=redis_namespace,
        jobs_namespace=env.get("JOBS_NAMESPACE", "").strip() or f"{redis_namespace}:jobs",
        redis_timeout_seconds=number("REDIS_TIMEOUT_SECONDS", 2.0, float),
        payment_hold_minutes=number("PAYMENT_HOLD_MINUTES", 15),
        registrations_per_hour=number("REGISTRATIONS_PER_HOUR", 10),
        invitations_per_hour=number("INVITATIONS_PER_HOUR", 30),
        trusted_proxies=TrustedProxies.parse(env.get("TRUSTED_PROXIES", "")),
        metrics_token=env.get("METRICS_TOKEN", "").strip() or None,
        worker_metrics_port=number("WORKER_METRICS_PORT", 1) if env.get("WORKER_METRICS_PORT") else None,
        scheduler_metrics_port=number("SCHEDULER_METRICS_PORT", 1) if env.get("SCHEDULER_METRICS_PORT") else None,
        log_format=log_format,
        jobs_max_retries=number("JOBS_MAX_RETRIES", 8),
        jobs_min_backoff_ms=number("JOBS_MIN_BACKOFF_MS", 500),
        jobs_max_backoff_ms=number("JOBS_MAX_BACKOFF_MS", 300000),
        jobs_time_limit_ms=number("JOBS_TIME_LIMIT_MS", 120000),
        jobs_heartbeat_timeout_ms=number("JOBS_HEARTBEAT_TIMEOUT_MS", 15000),
        jobs_maintenance_chance=number("JOBS_MAINTENANCE_CHANCE", 1000),
        jobs_fanout_chunk_size=number("JOBS_FANOUT_CHUNK_SIZE", 1000),
        # 0: jobs are queued in this process but run by none of its threads (tests of a crash use it).
        embedded_worker_threads=number("EMBEDDED_WORKER_THREADS", 2, zero_allowed=True),
        scheduler_interval_seconds=number("SCHEDULER_INTERVAL_SECONDS", 15.0, float),
        review_request_delay_minutes=number("REVIEW_REQUEST_DELAY_MINUTES", 120.0, float),
        outbox_grace_seconds=number("OUTBOX_GRACE_SECONDS", 30.0, float),
        outbox_redeliver_seconds=number("OUTBOX_REDELIVER_SECONDS", 30.0, float),
        outbox_max_attempts=number("OUTBOX_MAX_ATTEMPTS", 8),
        outbox_retention_days=number("OUTBOX_RETENTION_DAYS", 7.0, float),
        retention_reminders_days=number("RETENTION_REMINDERS_DAYS", 30.0, float),
        retention_notifications_days=number("RETENTION_NOTIFICATIONS_DAYS", 30.0, float),
        retention_batch_size=number("RETENTION_BATCH_SIZE", 1000),
        ops_sample_seconds=number("OPS_SAMPLE_SECONDS", 10.0, float),
        public_url=public_url,
        vapid_private_key=vapid_private_key,
        vapid_public_key=vapid_public_key,
        vapid_subject=vapid_subject,
        push_allowed_hosts=push_hosts,
        push_timeout_seconds=number("PUSH_TIMEOUT_SECONDS", 10.0, float),
        smtp_url=smtp_url,
        email_from=env.get("EMAIL_FROM", "").strip() or "Tidings <no-reply@localhost>",
        email_digest_delay_minutes=number("EMAIL_DIGEST_DELAY_MINUTES", 30.0, float, zero_allowed=True),
        smtp_timeout_seconds=number("SMTP_TIMEOUT_SECONDS", 15.0, float),
        mail_dir=Path(env["MAIL_DIR"]) if env.get("MAIL_DIR") else VAR_DIR / "mail",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
