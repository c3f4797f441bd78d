from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from webapp.http import DbSession, RowId, current_user, from_this_site, require_user, signed_in_user
from webapp.notifications.announcements import AnnouncementService
from webapp.notifications.models import Notification, NotificationType
from webapp.notifications.schemas import (
    AnnouncementAccepted,
    ArchiveReadResult,
    InboxCount,
    NotificationChanged,
    NotificationPage,
    ReadAllResult,
)
from webapp.notifications.services import (
    MAX_PAGE,
    InboxState,
    InboxStatus,
    NotificationService,
    notification_json,
)
from webapp.notifications.views import TYPE_LABELS, inbox_path, item_view, panel_context
from webapp.openapi import api_doc
from webapp.validation import MAX_INT32, RowIdField, SeqField, Text, parse_int

PANEL_SIZE = 10
PAGE_SIZE = 20


class ReadAllRequest(msgspec.Struct):
    up_to_seq: SeqField | None = None


class AnnouncementRequest(msgspec.Struct):
    title: Text
    body: Text = ""
    event_id: RowIdField | None = None


def count_trigger(state: InboxState) -> dict[str, str]:
    """The new count rides on htmx responses too (HX-Trigger), so the badge follows even
    before the stream's copy arrives; tabs keep whichever version is newer."""
    detail = {"unread_count": state.unread_count, "seq": state.seq, "version": state.version}
    return {"HX-Trigger": json.dumps({"tidings:count": detail})}


class NotificationPages(Controller):
    path = "/notifications"
    guards = [require_user]
    include_in_schema = False

    @post("/panel", status_code=HTTP_200_OK)
    async def panel(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        """Opening the dropdown: the latest items, split into unread and earlier; marks them seen."""
        user = await signed_in_user(request)
        items, state = await NotificationService(db_session).panel(user.id, PANEL_SIZE)
        # Its count rides along, so the badge agrees with the header the dropdown shows.
        return _panel(items, state, user.timezone, count_trigger(state))

    @get("/")
    async def inbox(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        status: Annotated[str, QueryParameter()] = "all",
        type: Annotated[str | None, QueryParameter()] = None,  # noqa: A002 - the query parameter's name
        cursor: Annotated[str | None, QueryParameter()] = None,
    ) -> Template:
        """The inbox page. Its filters live in the URL (a GET form), so a reload or the back button
        keeps them; older pages load as the list scrolls (see `items`)."""
        context = await _inbox_items(request, db_session, status, type, cursor)
        return Template("notifications.html", context={**context, "cursor": cursor, "type_labels": TYPE_LABELS})

    @get("/items")
    async def items(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        status: Annotated[str, QueryParameter()] = "all",
        type: Annotated[str | None, QueryParameter()] = None,  # noqa: A002 - the query parameter's name
        cursor: Annotated[str | None, QueryParameter()] = None,
    ) -> Template:
        """The next page of the inbox list, loaded when its placeholder scrolls into view."""
        context = await _inbox_items(request, db_session, status, type, cursor)
        return Template("_inbox_items.html", context=context)

    @get("/{notification_id:int}/open", opt={"writes": True})
    async def open(self, request: Request[Any, Any, Any], db_session: DbSession, notification_id: RowId) -> Redirect:
        """Marks read, then follows the link: the read cannot lose a race with the navigation. A link
        followed from another site is only followed: it changes nothing."""
        service, user_id = NotificationService(db_session), current_user(request).id
        if from_this_site(request):
            notification, _ = await service.mark_read(user_id, notification_id)
        else:
            notification = await service.get(user_id, notification_id)
        target = notification.url if notification.url.startswith("/") and not notification.url.startswith("//") else "/"
        return Redirect(target)

    @post("/{notification_id:int}/read", status_code=HTTP_200_OK)
    async def read(self, request: Request[Any, Any, Any], db_session: DbSession, notification_id: RowId) -> Template:
        return await self._set(request, db_session, notification_id, read=True)

    @post("/{notification_id:int}/unread", status_code=HTTP_200_OK)
    async def unread(self, request: Request[Any, Any, Any], db_session: DbSession, notification_id: RowId) -> Template:
        return await self._set(request, db_session, notification_id, read=False)

    async def _set(self, request: Request[Any, Any, Any], session: Any, notification_id: int, read: bool) -> Template:
        notification, state = await _change(request, session, notification_id, "mark_read" if read else "mark_unread")
        return Template(
            "_notification_item.html",
            context={"n": item_view(notification_json(notification), (await signed_in_user(request)).timezone)},
            headers=count_trigger(state),
        )

    @post("/{notification_id:int}/archive", status_code=HTTP_200_OK)
    async def archive(
        self, request: Request[Any, Any, Any], db_session: DbSession, notification_id: RowId
    ) -> Response[Any]:
        return await self._archive(request, db_session, notification_id, archived=True)

    @post("/{notification_id:int}/unarchive", status_code=HTTP_200_OK)
    async def unarchive(
        self, request: Request[Any, Any, Any], db_session: DbSession, notification_id: RowId
    ) -> Response[Any]:
        return await self._archive(request, db_session, notification_id, archived=False)

    async def _archive(
        self, request: Request[Any, Any, Any], session: Any, notification_id: int, archived: bool
    ) -> Response[Any]:
        """The item leaves the view it was in (the button swaps it away): only the count comes back."""
        _, state = await _change(request, session, notification_id, "archive" if archived else "unarchive")
        return Response("", headers=count_trigger(state))

    @post("/read_all", status_code=HTTP_200_OK)
    async def read_all(self, request: Request[Any, Any, Any], db_session: DbSession) -> Response[Any]:
        return await self._all(request, db_session, archive=False)

    @post("/archive_read", status_code=HTTP_200_OK)
    async def archive_read(self, request: Request[Any, Any, Any], db_session: DbSession) -> Response[Any]:
        return await self._all(request, db_session, archive=True)

    async def _all(self, request: Request[Any, Any, Any], session: Any, archive: bool) -> Response[Any]:
        """ "Mark all as read" and "Archive all read", up to the seq the page showed. From the
        dropdown: the dropdown again; from the inbox page: its list again, under the same filters;
        without script: back to the inbox page with those filters."""
        user = await signed_in_user(request)
        form = dict(await request.form())
        service = NotificationService(session)
        change = service.archive_read if archive else service.mark_all_read
        _, state = await change(user.id, parse_int(form.get("up_to_seq"), "up_to_seq"))
        status, type_ = str(form.get("status") or "all"), str(form.get("type") or "")
        if not request.headers.get("hx-request"):
            return Redirect(inbox_path(status, type_))
        if form.get("view") == "inbox":
            context = await _inbox_items(request, session, status, type_, None)
            return Template("_inbox_items.html", context=context, headers=count_trigger(state))
        items, _ = await service.listing(user.id, limit=PANEL_SIZE)
        return _panel(items, state, user.timezone, count_trigger(state))


ItemChange = Literal["mark_read", "mark_unread", "archive", "unarchive"]


async def _change(
    request: Request[Any, Any, Any], session: Any, notification_id: int, change: ItemChange
) -> tuple[Notification, InboxState]:
    """One of the user's items marked read or unread, archived or brought back (another's: 404)."""
    service = NotificationService(session)
    act = {
        "mark_read": service.mark_read,
        "mark_unread": service.mark_unread,
        "archive": service.archive,
        "unarchive": service.unarchive,
    }[change]
    return await act(current_user(request).id, notification_id)


async def _changed(
    request: Request[Any, Any, Any], session: Any, notification_id: int, change: ItemChange
) -> NotificationChanged:
    notification, state = await _change(request, session, notification_id, change)
    return {"notification": notification_json(notification), "unread_count": state.unread_count}


def _panel(items: list[Any], state: InboxState, timezone: str, headers: dict[str, str] | None = None) -> Template:
    context = panel_context([notification_json(n) for n in items], state.unread_count, timezone)
    return Template("_notification_panel.html", context={**context, "inbox": state}, headers=headers)


async def _inbox_items(
    request: Request[Any, Any, Any], session: Any, status: str, type_: str | None, cursor: str | None
) -> dict[str, Any]:
    """One page of the inbox list under its filters (refused with a 422 when they are not ones)."""
    user = await signed_in_user(request)
    items, next_cursor = await NotificationService(session).listing(
        user.id, status, type_ or None, PAGE_SIZE, parse_int(cursor, "cursor")
    )
    return {
        "items": [item_view(notification_json(n), user.timezone) for n in items],
        "status": status,
        "type": type_ or "",
        "first_page": not cursor,
        "next_cursor": next_cursor,
    }


class NotificationApi(Controller):
    path = "/api/v1"
    guards = [require_user]
    tags = ["notifications"]

    @get("/notifications", **api_doc("List my notifications, a page at a time", 422, auth=True))
    async def listing(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        status: Annotated[InboxStatus, QueryParameter()] = "all",
        type: Annotated[NotificationType | None, QueryParameter()] = None,  # noqa: A002 - the query parameter's name
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 20,
        cursor: Annotated[int | None, QueryParameter(gt=-1, le=MAX_INT32)] = None,  # a seq: see SeqField
    ) -> NotificationPage:
        user = current_user(request)
        service = NotificationService(db_session)
        items, next_cursor = await service.listing(user.id, status, type, limit, cursor)
        return {
            "items": [notification_json(n) for n in items],
            "unread_count": await service.unread_count(user.id),
            "next_cursor": str(next_cursor) if next_cursor is not None else None,
        }

    @get("/notifications/unread_count", **api_doc("Show my unread count", auth=True))
    async def unread_count(self, request: Request[Any, Any, Any], db_session: DbSession) -> InboxCount:
        state = await NotificationService(db_session).state(current_user(request).id)
        return {"unread_count": state.unread_count, "seq": state.seq, "version": state.version}

    @post(
        "/notifications/{notification_id:int}/read",
        status_code=HTTP_200_OK,
        **api_doc("Mark a notification read", 403, 404, 422, auth=True),
    )
    async def read(
        self, request: Request[Any, Any, Any], db_session: DbSession, notification_id: RowId
    ) -> NotificationChanged:
        return await _changed(request, db_session, notification_id, "mark_read")

    @post(
        "/notifications/{notification_id:int}/unread",
        status_code=HTTP_200_OK,
        **api_doc("Mark a notification unread", 403, 404, 422, auth=True),
    )
    async def unread(
        self, request: Request[Any, Any, Any], db_session: DbSession, notification_id: RowId
    ) -> NotificationChanged:
        return await _changed(request, db_session, notification_id, "mark_unread")

    @post(
        "/notifications/{notification_id:int}/archive",
        status_code=HTTP_200_OK,
        **api_doc("Archive a notification (out of the list and the unread count)", 403, 404, 422, auth=True),
    )
    async def archive(
        self, request: Request[Any, Any, Any], db_session: DbSession, notification_id: RowId
    ) -> NotificationChanged:
        return await _changed(request, db_session, notification_id, "archive")

    @post(
        "/notifications/{notification_id:int}/unarchive",
        status_code=HTTP_200_OK,
        **api_doc("Bring an archived notification back", 403, 404, 422, auth=True),
    )
    async def unarchive(
        self, request: Request[Any, Any, Any], db_session: DbSession, notification_id: RowId
    ) -> NotificationChanged:
        return await _changed(request, db_session, notification_id, "unarchive")

    @post(
        "/notifications/archive_read",
        status_code=HTTP_200_OK,
        **api_doc("Archive all my read notifications (up to a seq)", 400, 403, 413, 422, auth=True, optional_body=True),
    )
    async def archive_read(
        self, request: Request[Any, Any, Any], db_session: DbSession, data: JSONBody[ReadAllRequest | None] = None
    ) -> ArchiveReadResult:
        up_to = data.up_to_seq if data else None
        ids, state = await NotificationService(db_session).archive_read(current_user(request).id, up_to)
        return {"archived": len(ids), "unread_count": state.unread_count}

    @post(
        "/notifications/read_all",
        status_code=HTTP_200_OK,
        **api_doc("Mark all my notifications read (up to a seq)", 400, 403, 413, 422, auth=True, optional_body=True),
    )
    async def read_all(
        self, request: Request[Any, Any, Any], db_session: DbSession, data: JSONBody[ReadAllRequest | None] = None
    ) -> ReadAllResult:
        up_to = data.up_to_seq if data else None
        ids, state = await NotificationService(db_session).mark_all_read(current_user(request).id, up_to)
        return {"updated": len(ids), "unread_count": state.unread_count}

    @post(
        "/announcements",
        status_code=HTTP_202_ACCEPTED,
        **api_doc(
            "Announce to an event's attendees (or, as an admin, everyone)", 400, 403, 404, 413, 422, 429, auth=True
        ),
    )
    async def announce(
        self, request: Request[Any, Any, Any], db_session: DbSession, data: JSONBody[AnnouncementRequest]
    ) -> AnnouncementAccepted:
        service = AnnouncementService(db_session, request.app.state.announcement_limiter)
        announced = await service.announce(await signed_in_user(request), data.title, data.body, data.event_id)
        return {"status": "accepted", "recipients": announced.recipients, "report_id": announced.report_id}
