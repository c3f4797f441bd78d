from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import JSONBody, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.bookings.event_changes import EventChangeService
from webapp.bookings.services import BookingService
from webapp.errors import DomainError, ValidationFailed
from webapp.events.forms import event_form_values, form_errors_for, parse_event_form
from webapp.events.schemas import EventCreate, EventJson, EventPage, EventPatch, event_json
from webapp.events.services import EventDetails, EventService
from webapp.flash import flash_redirect
from webapp.groups.services import GroupService
from webapp.http import DbSession, PageCursor, PageLimit, RowId, current_user, require_user, signed_in_user
from webapp.notifications.announcements import AnnouncementService
from webapp.notifications.delivery_reports import DeliveryReports
from webapp.openapi import api_doc
from webapp.pagination import DEFAULT_PAGE_SIZE
from webapp.preferences.services import PreferenceService
from webapp.reviews.services import ReviewService
from webapp.timeutil import common_timezones
from webapp.validation import NO_NUL_PATTERN
from webapp.web.deliveries import EVENT_EMPTY, PAGE_REPORTS

SearchQuery = Annotated[str, QueryParameter(max_length=200, pattern=NO_NUL_PATTERN)]


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in dict(await request.form()).items()}


def _event_form(
    form: dict[str, str],
    errors: dict[str, str],
    event_id: RowId | None = None,
    status: int = 200,
    browser_zone: str = "",
) -> Template:
    return Template(
        "event_form.html",
        context={
            "form": form,
            "errors": errors,
            "event_id": event_id,
            "timezones": common_timezones(),
            "browser_zone": browser_zone,
        },
        status_code=status,
    )


async def _organizer_event_page(
    session: Any,
    user: Any,
    event_id: int,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Template:
    event = await EventService(session).get_organized(user, event_id)
    bookings = await BookingService(session).attendees_of(user, event_id)
    return Template(
        "organizer_event.html",
        context={"event": event, "bookings": bookings, "announce_errors": errors or {}},
        status_code=status,
    )


async def event_page(
    session: AsyncSession, user: User | None, event_id: int, errors: dict[str, str] | None = None, status: int = 200
) -> Template:
    """The event's page; a refused booking re-renders all of it, with the reason beside the form."""
    event = await EventService(session).get(event_id)
    groups = await GroupService(session).list_for_member(user) if user else []
    reviews = await ReviewService(session).list_for_event(event_id)
    can_review = False
    if user:
        try:
            await ReviewService(session).check_can_review(user, event)
            can_review = True
        except DomainError:  # any refusal just hides the link
            can_review = False
    # Its organizer and admins see how its announcements, changes and cancellation got through.
    reports = None
    muted = await PreferenceService(session).is_muted(user.id, event.id) if user else False
    if user and (user.is_admin or user.id == event.organizer_id):
        reports = await DeliveryReports(session).of_event(event.id, PAGE_REPORTS)
    return Template(
        "event_detail.html",
        context={
            "event": event,
            "groups": groups,
            "reviews": reviews,
            "can_review": can_review,
            "errors": errors or {},
            "delivery_reports": reports,
            "reports_empty": EVENT_EMPTY,
            "muted": muted,
        },
        status_code=status,
    )


class EventPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/")
    async def index(self, db_session: DbSession, q: SearchQuery = "") -> Template:
        events = await EventService(db_session).list_upcoming(q)
        return Template("events.html", context={"events": events, "q": q})

    @get("/events/_list")
    async def search(self, db_session: DbSession, q: SearchQuery = "") -> Template:
        events = await EventService(db_session).list_upcoming(q)
        return Template("_event_list.html", context={"events": events, "q": q})

    @get("/events/{event_id:int}")
    async def detail(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> Template:
        return await event_page(db_session, request.user, event_id)

    @get("/events/new", guards=[require_user])
    async def new(self) -> Template:
        # A new event's zone starts as the organizer's browser's (forms.js; UTC without script).
        defaults = {"timezone": "UTC", "currency": "EUR", "capacity": "50", "price": "0.00"}
        return _event_form(defaults, {}, browser_zone="default")

    @post("/events/new", guards=[require_user], status_code=HTTP_200_OK)
    async def create(self, request: Request[Any, Any, Any], db_session: DbSession) -> Response[Any]:
        form = await _form(request)
        try:
            event = await EventService(db_session).create(current_user(request), parse_event_form(form))
        except ValidationFailed as exc:
            await db_session.rollback()
            return _event_form(form, form_errors_for(exc.fields), status=422)
        return flash_redirect(request, f"/events/{event.id}", f"{event.title} is created and open for booking.")

    @get("/events/{event_id:int}/edit", guards=[require_user])
    async def edit(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> Template:
        event = await EventService(db_session).get_organized(current_user(request), event_id)
        return _event_form(event_form_values(event), {}, event_id=event.id)

    @post("/events/{event_id:int}/edit", guards=[require_user], status_code=HTTP_200_OK)
    async def update(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> Response[Any]:
        form = await _form(request)
        event = await EventService(db_session).get_organized(current_user(request), event_id)
        try:
            details = parse_event_form(form, current=event)
            await EventChangeService(db_session).update(current_user(request), event_id, details.__dict__)
        except ValidationFailed as exc:
            await db_session.rollback()
            return _event_form(form, form_errors_for(exc.fields), event_id=event_id, status=422)
        return flash_redirect(request, f"/organizer/events/{event_id}", f"Your changes to {details.title} are saved.")

    @post("/events/{event_id:int}/cancel", guards=[require_user], status_code=HTTP_200_OK)
    async def cancel(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> Redirect:
        event = await EventChangeService(db_session).cancel(current_user(request), event_id)
        message = f"{event.title} is cancelled. Its attendees are being told, and paid bookings refunded."
        return flash_redirect(request, f"/organizer/events/{event_id}", message)

    @get("/organizer", guards=[require_user])
    async def dashboard(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        events = await EventService(db_session).list_organized(current_user(request))
        return Template("organizer.html", context={"events": events})

    @get("/organizer/events/{event_id:int}", guards=[require_user])
    async def attendees(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> Template:
        return await _organizer_event_page(db_session, current_user(request), event_id)

    @post("/organizer/events/{event_id:int}/announce", guards=[require_user], status_code=HTTP_303_SEE_OTHER)
    async def announce(
        self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId
    ) -> Template | Redirect:
        user = await signed_in_user(request)
        form = {k: str(v) for k, v in dict(await request.form()).items()}
        service = AnnouncementService(db_session, request.app.state.announcement_limiter)
        try:
            announced = await service.announce(user, form.get("title", ""), form.get("body", ""), event_id)
        except DomainError as exc:
            if exc.status_code == 404:
                raise
            await db_session.rollback()
            errors = exc.fields or {"form": exc.message}
            return await _organizer_event_page(db_session, user, event_id, errors=errors, status=exc.status_code)
        # POST-redirect-GET: reloading the result must not announce again (nor say so again).
        people = f"{announced.recipients} attendee{'s' if announced.recipients != 1 else ''}"
        title = form.get("title", "").strip()
        message = f"“{title}” is on its way to {people}. Its delivery report follows it live on the event page."
        return flash_redirect(request, f"/organizer/events/{event_id}", message, status_code=HTTP_303_SEE_OTHER)


class EventApi(Controller):
    path = "/api/v1/events"
    tags = ["events"]

    @get("/", **api_doc("List upcoming events, a page at a time", 422))
    async def list_events(
        self,
        db_session: DbSession,
        q: SearchQuery = "",
        limit: PageLimit = DEFAULT_PAGE_SIZE,
        cursor: PageCursor = None,
    ) -> EventPage:
        events, next_cursor = await EventService(db_session).page_upcoming(q, limit, cursor)
        return {"items": [event_json(e) for e in events], "next_cursor": next_cursor}

    @post(
        "/",
        guards=[require_user],
        status_code=HTTP_201_CREATED,
        **api_doc("Create an event", 400, 403, 413, 422, auth=True),
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[EventCreate], db_session: DbSession
    ) -> EventJson:
        details = EventDetails(**{f: getattr(data, f) for f in data.__struct_fields__})
        return event_json(await EventService(db_session).create(current_user(request), details))

    @get("/{event_id:int}", **api_doc("Show an event", 404, 422))
    async def show(self, db_session: DbSession, event_id: RowId) -> EventJson:
        return event_json(await EventService(db_session).get(event_id))

    @patch(
        "/{event_id:int}",
        guards=[require_user],
        **api_doc("Change an event", 400, 403, 404, 409, 413, 422, auth=True),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[EventPatch],
        db_session: DbSession,
        event_id: RowId,
    ) -> EventJson:
        return event_json(await EventChangeService(db_session).update(current_user(request), event_id, data.changes()))

    @post(
        "/{event_id:int}/cancel",
        guards=[require_user],
        status_code=HTTP_200_OK,
        **api_doc("Cancel an event", 403, 404, 409, 422, auth=True),
    )
    async def cancel(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> EventJson:
        return event_json(await EventChangeService(db_session).cancel(current_user(request), event_id))
