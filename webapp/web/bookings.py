from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.bookings.models import Booking
from webapp.bookings.payments import PaymentService
from webapp.bookings.schemas import (
    BookingCreate,
    BookingJson,
    BookingPage,
    PaymentDeclinedBody,
    PaymentRequest,
    booking_json,
)
from webapp.bookings.services import BookingService, RequestKeyReused
from webapp.db import MAX_ROW_ID
from webapp.errors import Conflict, DomainError, PaymentDeclined, ValidationFailed
from webapp.flash import flash_redirect
from webapp.http import DbSession, PageCursor, PageLimit, RowId, current_user, error_json, require_user, signed_in_user
from webapp.openapi import api_doc
from webapp.pagination import DEFAULT_PAGE_SIZE
from webapp.rendering import money
from webapp.validation import parse_int
from webapp.web.auth import safe_next
from webapp.web.events import event_page


async def _payment_page(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    booking_id: RowId,
    error: str = "",
    status: int = 200,
) -> Template:
    booking = await BookingService(session).get_for_booker(current_user(request), booking_id)
    attempts = await PaymentService(session, request.app.state.payment_gateway).attempts(booking)
    hold_minutes = request.app.state.settings.payment_hold_minutes
    context = {
        "booking": booking,
        "attempts": attempts,
        "error": error,
        "hold_minutes": hold_minutes,
        "pay_by": booking.created_at + timedelta(minutes=hold_minutes),
        "timezone": (await signed_in_user(request)).timezone,
    }
    return Template("payment.html", context=context, status_code=status)


async def pay_booking(
    request: Request[Any, Any, Any], session: AsyncSession, booking_id: int, card_number: str
) -> Booking:
    """A payment is three units of work (see webapp.bookings.payments): record the attempt, call
    the gateway with no transaction open, record the outcome. The outcome is committed before a
    decline or a conflict is answered, so the attempt is never lost."""
    user = current_user(request)
    payments = PaymentService(session, request.app.state.payment_gateway)
    payment = await payments.start(user, booking_id, card_number)
    await session.commit()
    result = await payments.charge(payment, card_number)
    booking = await payments.finish(user, payment.id, result)
    await session.commit()
    if not result.succeeded:
        raise PaymentDeclined(result.failure_message or "The payment failed.", code=result.failure_code)
    if booking.status != "confirmed":
        raise Conflict("This booking was cancelled while paying.", code="booking_not_pending")
    return booking


def _seats(booking: Booking) -> str:
    return f"{booking.seats} seat{'s' if booking.seats != 1 else ''}"


class BookingPages(Controller):
    path = "/"
    include_in_schema = False
    guards = [require_user]

    @post("/events/{event_id:int}/book", status_code=HTTP_200_OK)
    async def book(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> Response[Any]:
        form = dict(await request.form())
        user = current_user(request)
        try:
            group_id = parse_int(form.get("group_id"), "group_id", 1, MAX_ROW_ID)
            seats = (parse_int(form.get("seats", "1"), "seats") or 0) if group_id is None else 0
        except ValidationFailed as exc:
            await db_session.rollback()
            return await self._detail_with_error(request, db_session, event_id, exc)
        service = BookingService(db_session)
        token = str(form.get("booking_token", ""))
        try:
            if token:
                # The form's one-time token: a double submit or a retry lands on the same booking.
                booking, _ = await service.book_once(user, f"form:{token}", event_id, seats, group_id)
                await db_session.commit()
                booking = await service.get_for_booker(user, booking.id)
            else:
                booking = await service.book(user, event_id, seats, group_id)
        except RequestKeyReused:
            await db_session.rollback()
            reused = RequestKeyReused("This form was already used to book. Book again from the form below.")
            return await self._detail_with_error(request, db_session, event_id, reused)
        except DomainError as exc:
            if exc.status_code == 404:
                raise
            await db_session.rollback()
            return await self._detail_with_error(request, db_session, event_id, exc)
        if booking.status == "pending":
            return Redirect(f"/bookings/{booking.id}/pay")  # that page says what happens next
        return flash_redirect(request, "/bookings", f"You're booked for {booking.event.title}: {_seats(booking)}.")

    async def _detail_with_error(
        self, request: Request[Any, Any, Any], session: AsyncSession, event_id: RowId, exc: DomainError
    ) -> Template:
        errors = exc.fields or {"booking": exc.message}
        return await event_page(session, await signed_in_user(request), event_id, errors, exc.status_code)

    @get("/bookings")
    async def mine(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        bookings = await BookingService(db_session).list_for_user(current_user(request))
        return Template("bookings.html", context={"bookings": bookings})

    @post("/bookings/{booking_id:int}/cancel", status_code=HTTP_200_OK)
    async def cancel(self, request: Request[Any, Any, Any], db_session: DbSession, booking_id: RowId) -> Redirect:
        form = dict(await request.form())
        user = current_user(request)
        booking = await BookingService(db_session).cancel(user, booking_id)
        whose = "Your booking" if booking.user_id == user.id else f"The booking of {_seats(booking)}"
        message = f"{whose} for {booking.event.title} is cancelled."
        if booking.refund_status == "pending":
            message += f" A refund of {money(booking.amount_cents, booking.currency)} is on its way."
        return flash_redirect(request, safe_next(str(form.get("next", "/bookings"))), message)

    @get("/bookings/{booking_id:int}/pay")
    async def payment_form(self, request: Request[Any, Any, Any], db_session: DbSession, booking_id: RowId) -> Template:
        return await _payment_page(request, db_session, booking_id)

    @post("/bookings/{booking_id:int}/pay", status_code=HTTP_200_OK)
    async def pay(self, request: Request[Any, Any, Any], db_session: DbSession, booking_id: RowId) -> Response[Any]:
        form = dict(await request.form())
        try:
            await pay_booking(request, db_session, booking_id, str(form.get("card_number", "")))
        except DomainError as exc:
            if exc.status_code == 404:
                raise
            await db_session.rollback()
            message = exc.fields.get("card_number", exc.message)
            return await _payment_page(request, db_session, booking_id, message, exc.status_code)
        booking = await BookingService(db_session).get_for_booker(current_user(request), booking_id)
        return flash_redirect(request, "/bookings", f"Payment received: you're booked for {booking.event.title}.")


class BookingApi(Controller):
    path = "/api/v1"
    guards = [require_user]
    tags = ["bookings"]

    @post(
        "/events/{event_id:int}/bookings",
        status_code=HTTP_201_CREATED,
        **api_doc("Book seats (optionally with an Idempotency-Key header)", 400, 403, 404, 409, 413, 422, auth=True),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[BookingCreate],
        db_session: DbSession,
        event_id: RowId,
    ) -> Response[BookingJson]:
        service = BookingService(db_session)
        user = current_user(request)
        key = request.headers.get("idempotency-key")
        if key is None:
            booking = await service.book(user, event_id, data.seats, data.group_id)
            return Response(booking_json(booking), status_code=201)
        booking, replayed = await service.book_once(user, key, event_id, data.seats, data.group_id)
        await db_session.commit()
        booking = await service.get_for_booker(user, booking.id)
        # A retry gets what the first request got: the same booking, the same status code.
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return Response(booking_json(booking), status_code=201, headers=headers)

    @get("/bookings", **api_doc("List my bookings, a page at a time", 422, auth=True))
    async def mine(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        limit: PageLimit = DEFAULT_PAGE_SIZE,
        cursor: PageCursor = None,
    ) -> BookingPage:
        bookings, next_cursor = await BookingService(db_session).page_for_user(current_user(request), limit, cursor)
        return {"items": [booking_json(b) for b in bookings], "next_cursor": next_cursor}

    @post(
        "/bookings/{booking_id:int}/pay",
        status_code=HTTP_200_OK,
        **api_doc(
            "Pay for a pending booking",
            400,
            402,
            403,
            404,
            409,
            413,
            422,
            auth=True,
            special={402: PaymentDeclinedBody},
        ),
    )
    async def pay(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PaymentRequest],
        db_session: DbSession,
        booking_id: RowId,
    ) -> Response[BookingJson]:
        user = current_user(request)
        try:
            booking = await pay_booking(request, db_session, booking_id, data.card_number)
        except PaymentDeclined as exc:
            declined = error_json(exc.status_code, exc.code, exc.message)
            await db_session.rollback()
            declined.content["booking"] = booking_json(
                await BookingService(db_session).get_for_booker(user, booking_id)
            )
            return declined
        return Response(booking_json(booking))

    @post(
        "/bookings/{booking_id:int}/cancel",
        status_code=HTTP_200_OK,
        **api_doc("Cancel a booking", 403, 404, 409, 422, auth=True),
    )
    async def cancel(self, request: Request[Any, Any, Any], db_session: DbSession, booking_id: RowId) -> BookingJson:
        return booking_json(await BookingService(db_session).cancel(current_user(request), booking_id))
