"""Admins announce to everyone from the web UI, and follow each announcement's delivery report live.

The form is a self-contained fragment (`_announcements_admin.html`, its context from
`announcement_panel`) so another admin page can include it. Sending follows POST-redirect-GET: a
sent announcement lands on `/admin/announcements` with a flash message saying so (webapp/flash.py);
reloading that page sends nothing and says nothing again. A refused one (a missing title, the
hourly limit) shows the form again with the reason and what was typed. Signed-in people who are not admins get 404 here.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.errors import DomainError
from webapp.flash import flash_redirect
from webapp.http import DbSession, require_admin, retry_headers, signed_in_user
from webapp.notifications.announcements import AnnouncementService
from webapp.notifications.delivery_reports import DeliveryReports
from webapp.sse_response import EventStreamResponse
from webapp.web.deliveries import EVERYONE_EMPTY, PAGE_REPORTS, TRANSPORT, watch_reports
from webapp.web.stream_access import require_stream_user

PATH = "/admin/announcements"


async def announcement_panel(
    session: AsyncSession,
    admin: User,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The context of `_announcements_admin.html`: the form (with what was typed and why it was
    refused), and the latest announcements to everyone."""
    return {
        "announce_form": form or {},
        "announce_errors": errors or {},
        "announcements": await DeliveryReports(session).to_everyone(PAGE_REPORTS),
        "reports_empty": EVERYONE_EMPTY,
    }


class AdminAnnouncementPages(Controller):
    path = PATH
    guards = [require_admin]
    include_in_schema = False

    @get("/")
    async def page(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        context = await announcement_panel(db_session, await signed_in_user(request))
        return Template("admin_announcements.html", context=context)

    @post("/", status_code=HTTP_303_SEE_OTHER)
    async def announce(self, request: Request[Any, Any, Any], db_session: DbSession) -> Response[Any]:
        admin = await signed_in_user(request)
        form = {k: str(v) for k, v in dict(await request.form()).items() if k in ("title", "body")}
        service = AnnouncementService(db_session, request.app.state.announcement_limiter)
        try:
            await service.announce(admin, form.get("title", ""), form.get("body", ""))
        except DomainError as exc:
            await db_session.rollback()
            errors = exc.fields or {"form": exc.message}
            context = await announcement_panel(db_session, admin, form=form, errors=errors)
            return Template(
                "admin_announcements.html", context=context, status_code=exc.status_code, headers=retry_headers(exc)
            )
        title = form.get("title", "").strip()
        message = f"Announcement sent to everyone: “{title}”. Its report below follows it as it arrives."
        return flash_redirect(request, PATH, message, status_code=HTTP_303_SEE_OTHER)


@get(
    f"{PATH}/stream", guards=[require_stream_user, require_admin], opt={"transport": TRANSPORT}, include_in_schema=False
)
async def announcement_reports_stream(request: Request[Any, Any, Any]) -> EventStreamResponse:
    """The latest announcements to everyone, live, for admins."""
    admin = await signed_in_user(request)  # read by the guard already
    return watch_reports(request, admin, lambda reports: reports.to_everyone(PAGE_REPORTS), EVERYONE_EMPTY)
