"""Handing a composed email over: to the SMTP server of SMTP_URL (aiosmtplib, with a timeout),
or in development without one to `var/mail/` as .eml files (shown at /dev/mail)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from webapp.settings import Settings

log = logging.getLogger("tidings.email")

# Outbox files are named after their Message-ID's key: a message written twice is one file.
MAIL_FILE = re.compile(r"[0-9a-f]{32}\.eml")
DEV_MAIL_LIMIT = 200


@dataclass(frozen=True)
class SmtpServer:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # smtps://: TLS from the first byte
    start_tls: bool  # smtp://…?starttls=true: upgrade after EHLO

    def __repr__(self) -> str:  # never the password
        return f"SmtpServer({self.hostname}:{self.port}, tls={self.use_tls}, starttls={self.start_tls})"


def parse_smtp_url(url: str) -> SmtpServer:
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://user:password@host:port")
    use_tls = parts.scheme == "smtps"
    starttls = parse_qs(parts.query).get("starttls", ["false"])[-1].lower() in {"1", "true", "yes"}
    return SmtpServer(
        hostname=parts.hostname,
        port=parts.port or (465 if use_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=use_tls,
        start_tls=starttls and not use_tls,
    )


def describe(settings: Settings) -> str:
    """Where mail goes, for the startup log line (no password)."""
    if settings.smtp_url:
        server = parse_smtp_url(settings.smtp_url)
        return f"email: SMTP {server.hostname}:{server.port}" + (" (TLS)" if server.use_tls else "")
    if settings.production:
        return "email: off (no SMTP_URL); nothing will be emailed"
    return f"email: development outbox {settings.mail_dir} (see /dev/mail)"


def log_email_mode(settings: Settings) -> None:
    """Said once at startup: an operator who forgot SMTP_URL in production learns it here."""
    if settings.production and not settings.smtp_url:
        log.warning(describe(settings))
    else:
        log.info(describe(settings))


async def deliver(settings: Settings, message: EmailMessage) -> None:
    """Hands the message over; returns once the server accepted it (or the file is written).
    Raises on any failure: the job is retried."""
    if settings.smtp_url:
        server = parse_smtp_url(settings.smtp_url)
        # Each SMTP step has its own timeout; the whole exchange is bounded too.
        sending = aiosmtplib.send(
            message,
            hostname=server.hostname,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.use_tls,
            start_tls=server.start_tls,
            timeout=settings.smtp_timeout_seconds,
        )
        await asyncio.wait_for(sending, settings.smtp_timeout_seconds * 3)
        return
    if settings.production:
        log.warning("email is off (no SMTP_URL); message %s dropped", message["Message-ID"])
        return
    await asyncio.to_thread(_write_eml, settings.mail_dir, message)


def _file_name(message: EmailMessage) -> str:
    key = str(message["Message-ID"]).strip("<>").split("@", 1)[0].split(".")[-1]
    return f"{key}.eml"


def _write_eml(directory: Path, message: EmailMessage) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    name = _file_name(message)
    temporary = directory / f".{name}.tmp"
    temporary.write_bytes(message.as_bytes(policy=policy.SMTP))
    os.replace(temporary, directory / name)  # a reader never sees half a message


@dataclass(frozen=True)
class StoredMail:
    name: str
    subject: str
    to: str
    sent_at: datetime
    message: EmailMessage

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        return str(body.get_content()) if body is not None else ""


def _read(path: Path) -> StoredMail:
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    return StoredMail(
        name=path.name,
        subject=str(message["Subject"] or ""),
        to=str(message["To"] or ""),
        sent_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
        message=message,
    )


def stored_mail(directory: Path) -> list[StoredMail]:
    """The development outbox, newest first (the latest DEV_MAIL_LIMIT)."""
    if not directory.is_dir():
        return []
    paths = sorted(
        (p for p in directory.iterdir() if MAIL_FILE.fullmatch(p.name)), key=lambda p: p.stat().st_mtime, reverse=True
    )
    return [_read(p) for p in paths[:DEV_MAIL_LIMIT]]


def one_stored_mail(directory: Path, name: str) -> StoredMail | None:
    if not MAIL_FILE.fullmatch(name) or not (directory / name).is_file():
        return None
    return _read(directory / name)
