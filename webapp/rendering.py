"""The one Jinja environment (autoescaping) used by pages, fragments and jobs."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path

from jinja2 import Environment
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from webapp.flash import take_flash
from webapp.timeutil import format_in_zone, in_zone

HTMX_VERSION = "4.0.1"


def money(cents: int, currency: str) -> str:
    if cents == 0:
        return "Free"
    return f"{cents / 100:,.2f} {currency}"


def local_time(moment: datetime | None, zone: str) -> str:
    return format_in_zone(moment, zone) if moment else ""


def clock_time(moment: datetime | None, zone: str) -> str:
    """Hours and minutes in a zone, with its abbreviation: a deadline within the hour."""
    if moment is None:
        return ""
    local = in_zone(moment, zone)
    return f"{local:%H:%M} {local.tzname() or zone}"


def iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def new_form_token() -> str:
    """A one-time token for a form that must act once (booking): a double submit or a retry
    sends the same token, and the server answers with what the first one did."""
    return secrets.token_urlsafe(18)


def configure_environment(env: Environment) -> None:
    env.filters["money"] = money
    env.filters["local_time"] = local_time
    env.filters["iso"] = iso
    env.filters["clock_time"] = clock_time
    env.globals["htmx_version"] = HTMX_VERSION
    env.globals["new_form_token"] = new_form_token
    env.globals["take_flash"] = take_flash


def template_config(directory: Path) -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        directory=directory,
        engine=JinjaTemplateEngine,
        engine_callback=lambda engine: configure_environment(engine.engine),
    )
