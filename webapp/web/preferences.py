"""The preferences page and API, muting an event, and one-click unsubscribe from an email."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import JSONBody, PathParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.errors import NotFound, ValidationFailed
from webapp.flash import flash_redirect
from webapp.http import AppSettings, DbSession, RowId, current_user, require_user, signed_in_user
from webapp.notifications.views import TYPE_LABELS
from webapp.openapi import api_doc
from webapp.preferences.plan import CHANNELS, DEFAULT_CHANNELS, LOCKED_CHANNELS
from webapp.preferences.schemas import MuteJson, PreferencesJson, PreferencesUpdate, preferences_json
from webapp.preferences.services import DIGEST, Keep, PreferenceService, locked_reason, quiet_hours_json
from webapp.signed_links import read_link
from webapp.timeutil import format_in_zone

CHANNEL_LABELS = {"browser": "Browser", "push": "Push", "email": "Email"}
# A signed token is a few hundred characters; anything far longer is no token of ours.
LinkToken = Annotated[str, PathParameter(max_length=2048)]


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in dict(await request.form()).items()}


async def preferences_page(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    *,
    quiet_form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Template:
    user = await signed_in_user(request)
    preferences = await PreferenceService(session).preferences(user.id)
    rows = [
        {
            "type": type_,
            "label": TYPE_LABELS.get(type_, type_),
            "cells": [
                {
                    "channel": channel,
                    "label": CHANNEL_LABELS[channel],
                    "on": preferences.channels[type_][channel],
                    "locked": channel in LOCKED_CHANNELS.get(type_, frozenset()),
                }
                for channel in CHANNELS
            ],
            "reason": locked_reason(type_, min(LOCKED_CHANNELS[type_])) if type_ in LOCKED_CHANNELS else "",
        }
        for type_ in DEFAULT_CHANNELS
    ]
    window = quiet_hours_json(preferences.quiet_hours)
    muted = [
        {"id": m.id, "title": m.title, "when": format_in_zone(m.starts_at, m.timezone)}
        for m in preferences.muted_events
    ]
    return Template(
        "preferences.html",
        context={
            "rows": rows,
            "channels": [CHANNEL_LABELS[c] for c in CHANNELS],
            "quiet": window,
            "quiet_form": quiet_form or window or {"start": "22:00", "end": "07:00"},
            "errors": errors or {},
            "timezone": user.timezone,
            "muted": muted,
        },
        status_code=status,
    )


def _mute_notice(event_id: int, muted: bool) -> Template:
    return Template("_event_mute_notice.html", context={"event_id": event_id, "muted": muted})


class PreferencePages(Controller):
    path = "/"
    include_in_schema = False
    guards = [require_user]

    @get("/preferences")
    async def show(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        return await preferences_page(request, db_session)

    @post("/preferences/channels", status_code=HTTP_200_OK)
    async def save_channels(self, request: Request[Any, Any, Any], db_session: DbSession) -> Response[Any]:
        """The grid's checkboxes: a cell that is not sent is off. Locked cells are disabled in the
        page (never sent) and left out here."""
        sent = {str(value) for key, value in (await request.form()).multi_items() if key == "cell"}
        changes = {
            type_: {
                channel: f"{type_}.{channel}" in sent
                for channel in CHANNELS
                if channel not in LOCKED_CHANNELS.get(type_, frozenset())
            }
            for type_ in DEFAULT_CHANNELS
        }
        await PreferenceService(db_session).update(current_user(request).id, channels=changes)
        return flash_redirect(request, "/preferences", "Your notification channels are saved.")

    @post("/preferences/quiet-hours", status_code=HTTP_200_OK)
    async def save_quiet_hours(self, request: Request[Any, Any, Any], db_session: DbSession) -> Response[Any]:
        form = await _form(request)
        user = await signed_in_user(request)
        service = PreferenceService(db_session)
        if form.get("action") == "clear":
            await service.update(user.id, quiet_hours=None)
            return flash_redirect(request, "/preferences", "Quiet hours are off.")
        start, end = form.get("start", ""), form.get("end", "")
        try:
            await service.update(user.id, quiet_hours=(start, end))
        except ValidationFailed as exc:
            await db_session.rollback()
            errors = {name.removeprefix("quiet_hours."): text for name, text in exc.fields.items()}
            return await preferences_page(
                request, db_session, quiet_form={"start": start, "end": end}, errors=errors, status=422
            )
        message = f"Quiet hours are {start}–{end} ({user.timezone}). Push and email wait until they end."
        return flash_redirect(request, "/preferences", message)

    @post("/preferences/muted/{event_id:int}/unmute", status_code=HTTP_200_OK)
    async def unmute_from_list(
        self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId
    ) -> Redirect:
        event = await PreferenceService(db_session).unmute_event(current_user(request).id, event_id)
        return flash_redirect(request, "/preferences", f"Updates about {event.title} are on again.")

    @post("/events/{event_id:int}/mute", status_code=HTTP_200_OK)
    async def mute(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> Response[Any]:
        """From a notification's "Stop updates about this event" (htmx: the button becomes a note),
        or a plain form (back to the event's page)."""
        event = await PreferenceService(db_session).mute_event(current_user(request).id, event_id)
        if request.headers.get("hx-request"):
            return _mute_notice(event_id, muted=True)
        return flash_redirect(request, f"/events/{event_id}", f"Updates about {event.title} are muted.")

    @post("/events/{event_id:int}/unmute", status_code=HTTP_200_OK)
    async def unmute(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> Response[Any]:
        event = await PreferenceService(db_session).unmute_event(current_user(request).id, event_id)
        if request.headers.get("hx-request"):
            return _mute_notice(event_id, muted=False)
        return flash_redirect(request, f"/events/{event_id}", f"Updates about {event.title} are on again.")


class PreferenceApi(Controller):
    path = "/api/v1"
    tags = ["preferences"]
    guards = [require_user]

    @get("/me/preferences", **api_doc("Show my notification preferences", auth=True))
    async def show(self, request: Request[Any, Any, Any], db_session: DbSession) -> PreferencesJson:
        user = await signed_in_user(request)
        return preferences_json(await PreferenceService(db_session).preferences(user.id), user.timezone)

    @put(
        "/me/preferences",
        **api_doc("Change my notification preferences (channels per type, quiet hours)", 400, 403, 413, 422, auth=True),
    )
    async def update(
        self, request: Request[Any, Any, Any], data: JSONBody[PreferencesUpdate], db_session: DbSession
    ) -> PreferencesJson:
        """Sets the cells given (others keep their value) and quiet hours (null: off; left out:
        unchanged). One refused cell or time refuses the whole request (422 naming each field).
        Email of payment_failed and event_cancelled cannot be switched off."""
        user = await signed_in_user(request)
        window: tuple[str, str] | None | Keep = Keep.KEEP
        if data.quiet_hours is None:
            window = None
        elif not isinstance(data.quiet_hours, msgspec.UnsetType):
            window = (data.quiet_hours.start, data.quiet_hours.end)
        channels = None if isinstance(data.channels, msgspec.UnsetType) else data.channels
        service = PreferenceService(db_session)
        await service.update(user.id, channels=channels, quiet_hours=window)
        return preferences_json(await service.preferences(user.id), user.timezone)

    @put(
        "/events/{event_id:int}/mute",
        **api_doc("Stop updates about an event (off-page channels)", 403, 404, 422, auth=True),
    )
    async def mute(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> MuteJson:
        """Its notifications still reach the inbox; browser, push and email stay quiet."""
        await PreferenceService(db_session).mute_event(current_user(request).id, event_id)
        return {"event_id": event_id, "muted": True}

    @delete(
        "/events/{event_id:int}/mute",
        status_code=HTTP_200_OK,
        **api_doc("Hear about an event again", 403, 404, 422, auth=True),
    )
    async def unmute(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> MuteJson:
        await PreferenceService(db_session).unmute_event(current_user(request).id, event_id)
        return {"event_id": event_id, "muted": False}


def _unsubscribe_subject(target: str) -> str:
    if target == DIGEST:
        return "the digest of what you missed (every notification's email that can be switched off)"
    return f"“{TYPE_LABELS.get(target, target)}” notifications"


def _bad_link() -> Template:
    message = "This unsubscribe link is not valid or has expired. Nothing was changed."
    return Template("unsubscribe.html", context={"invalid": True, "message": message}, status_code=400)


class UnsubscribePages(Controller):
    """One-click unsubscribe (RFC 8058) from an email's List-Unsubscribe link. The signed token
    is the proof: no session is needed, and the POST a mail client sends carries no CSRF token
    (the route is exempt; nothing else is). A GET only asks; the POST changes."""

    path = "/unsubscribe"
    include_in_schema = False

    @get("/{token:str}")
    async def confirm(self, token: LinkToken, settings: AppSettings) -> Template:
        claims = read_link(token, "unsubscribe", settings.secret_key)
        if claims is None or (claims.target != DIGEST and claims.target not in DEFAULT_CHANNELS):
            return _bad_link()
        return Template("unsubscribe.html", context={"subject": _unsubscribe_subject(claims.target), "token": token})

    @post("/{token:str}", status_code=HTTP_200_OK, opt={"exclude_from_csrf": True})
    async def unsubscribe(self, token: LinkToken, db_session: DbSession, settings: AppSettings) -> Template:
        claims = read_link(token, "unsubscribe", settings.secret_key)
        if claims is None:
            return _bad_link()
        try:
            done = await PreferenceService(db_session).unsubscribe(claims.user_id, claims.target)
        except NotFound:
            await db_session.rollback()
            return _bad_link()
        kept = [{"label": TYPE_LABELS.get(t, t), "reason": locked_reason(t, "email")} for t in done.kept]
        return Template(
            "unsubscribe.html",
            context={
                "done": True,
                "subject": _unsubscribe_subject(claims.target),
                "kept": kept,
                "off": done.switched_off,
            },
        )
