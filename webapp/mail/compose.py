"""An email from templates: a plain-text and an HTML part (templates/email/), escaped like every
other output, each item with its signed open link, one-click unsubscribe (RFC 8058) and a
Message-ID that is the same every time the same delivery is composed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape

from webapp.db import utcnow
from webapp.notifications.offsite import EmailBatch
from webapp.notifications.views import TYPE_LABELS
from webapp.rendering import configure_environment
from webapp.settings import Settings
from webapp.signed_links import open_link_token, unsubscribe_token


@lru_cache(maxsize=4)
def _environment(directory: Path) -> Environment:
    # The pages' filters, and escaping by extension: .html escaped, .txt as written.
    env = Environment(
        loader=FileSystemLoader(directory), autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True
    )
    configure_environment(env)
    return env


def message_key(user_id: int, delivery_ids: Sequence[int]) -> str:
    """Names one delivery: the same rows give the same key, so an email sent again after a crash
    carries the same Message-ID and mail clients show it once."""
    source = f"{user_id}:{','.join(str(i) for i in sorted(delivery_ids))}"
    return hashlib.sha256(source.encode()).hexdigest()[:32]


def header_text(text: str) -> str:
    """Text people wrote (an event's title, a name) as one header line: line breaks in a header
    would be refused by the mail library, or worse, start a header of their own."""
    return " ".join(text.split())


def unsubscribe_target(batch: EmailBatch) -> str:
    """A single immediate email unsubscribes from its type; anything else from the digest."""
    if len(batch.items) == 1 and not batch.items[0].digest:
        return batch.items[0].type
    return "digest"


def compose(settings: Settings, batch: EmailBatch) -> EmailMessage:
    base = settings.public_url
    items = [
        {
            "title": item.title,
            "body": item.body,
            "label": TYPE_LABELS.get(item.type, "Notification"),
            "when": item.created_at,
            "open_url": f"{base}/n/{open_link_token(batch.user_id, item.notification_id, settings.secret_key)}",
        }
        for item in batch.items
    ]
    target = unsubscribe_target(batch)
    unsubscribe_url = f"{base}/unsubscribe/{unsubscribe_token(batch.user_id, target, settings.secret_key)}"
    single = len(items) == 1
    subject = (
        header_text(batch.items[0].title) if single else f"{len(items)} notifications you have not seen on Tidings"
    )
    context = {
        "name": batch.name,
        "timezone": batch.timezone,
        "items": items,
        "single": single,
        "digest": target == "digest",
        "unsubscribe_url": unsubscribe_url,
        "site_url": base,
    }
    env = _environment(settings.templates_dir)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.email_from
    message["To"] = formataddr((header_text(batch.name), batch.email))
    message["Date"] = format_datetime(utcnow())
    domain = urlsplit(base).hostname or "tidings.invalid"
    message["Message-ID"] = f"<tidings.{message_key(batch.user_id, [i.delivery_id for i in batch.items])}@{domain}>"
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(env.get_template("email/notifications.txt").render(context))
    message.add_alternative(env.get_template("email/notifications.html").render(context), subtype="html")
    return message
