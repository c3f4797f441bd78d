"""Races against a real server process: simultaneous bookings never sell more seats than exist."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from jobs.scheduler import tick
from tests.api import bearer, book, create_event, event_payload, eventually, pay, register
from tests.conftest import TEST_SECRET, wait_for_live_jobs
from tests.services import LiveServer
from webapp.auth.models import User
from webapp.bookings.event_changes import EventChangeService
from webapp.bookings.models import Booking
from webapp.bookings.payment_gateway import ChargeResult, TestPaymentGateway
from webapp.bookings.payment_models import Payment
from webapp.bookings.payments import PaymentService
from webapp.bookings.reminder_models import Reminder
from webapp.bookings.services import BookingService
from webapp.db import create_sessionmaker, utcnow
from webapp.events.models import Event
from webapp.events.services import EventDetails, EventService

CAPACITY = 25
RACERS = 20
GOOD_CARD = "4242 4242 4242 4242"
PAYERS = 5
RELEASE_ROUNDS = 25
KEYED_ROUNDS = 8


@pytest.fixture(scope="module")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log_path = tmp_path_factory.mktemp("live") / "server.log"
    server = LiveServer(env={"DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET}, log_path=log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in log_path.read_text(errors="replace"), log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(autouse=True)
async def jobs_settled(engine: Any) -> AsyncIterator[None]:
    """The live server outlives each test: the jobs a test started end before the database is
    emptied. A job still running then can lose a deadlock to the TRUNCATE and log a traceback."""
    yield
    await wait_for_live_jobs(engine)


async def ok_json(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


async def event_with_seats_left(http: httpx.AsyncClient, organizer: str, booker: str, seats_left: int) -> int:
    """An event of CAPACITY seats of which all but `seats_left` are booked and paid for by one user,
    in bookings of at most 20 seats."""
    event = await ok_json(
        await http.post(
            "/api/v1/events", json=event_payload(capacity=CAPACITY, price_cents=1000), headers=bearer(organizer)
        ),
        201,
    )
    to_take = CAPACITY - seats_left
    while to_take:
        batch = min(20, to_take)
        booking = await ok_json(
            await http.post(f"/api/v1/events/{event['id']}/bookings", json={"seats": batch}, headers=bearer(booker)),
            201,
        )
        paid = await http.post(
            f"/api/v1/bookings/{booking['id']}/pay", json={"card_number": GOOD_CARD}, headers=bearer(booker)
        )
        assert (await ok_json(paid, 200))["status"] == "confirmed"
        to_take -= batch
    current = await ok_json(await http.get(f"/api/v1/events/{event['id']}"), 200)
    assert current["seats_left"] == seats_left
    return int(event["id"])


@pytest.mark.parametrize(
    ("seats_each", "seats_left"),
    [(1, 5), (2, 3)],
    ids=["20-racers-1-seat-each-for-5-seats", "20-racers-2-seats-each-for-3-seats"],
)
async def test_simultaneous_bookings_for_the_last_seats_never_overbook(
    client, session, live_server, seats_left, seats_each
):
    # Accounts are made in-process (same database, same signing key): the race is what runs live.
    _, organizer = await register(client)
    _, booker = await register(client)
    racers = [await register(client) for _ in range(RACERS)]
    expected_winners = seats_left // seats_each

    async with httpx.AsyncClient(
        base_url=live_server.url, timeout=60, limits=httpx.Limits(max_connections=RACERS + 5)
    ) as http:
        event_id = await event_with_seats_left(http, organizer, booker, seats_left)

        start = asyncio.Event()

        async def race(token: str) -> httpx.Response:
            await start.wait()
            return await http.post(
                f"/api/v1/events/{event_id}/bookings", json={"seats": seats_each}, headers=bearer(token)
            )

        attempts = [asyncio.create_task(race(token)) for _, token in racers]
        await asyncio.sleep(0)  # every task is waiting at the start line
        start.set()
        responses = await asyncio.gather(*attempts)

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: expected_winners, 409: RACERS - expected_winners}, [r.text for r in responses]
        assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"event_full"}
        winners = [(token, r.json()) for (_, token), r in zip(racers, responses, strict=True) if r.status_code == 201]
        assert all(b["status"] == "pending" and b["seats"] == seats_each for _, b in winners)

        payments = await asyncio.gather(
            *(
                http.post(f"/api/v1/bookings/{b['id']}/pay", json={"card_number": GOOD_CARD}, headers=bearer(token))
                for token, b in winners
            )
        )
        assert [p.status_code for p in payments] == [200] * expected_winners, [p.text for p in payments]
        assert all(p.json()["status"] == "confirmed" for p in payments)

        event = await ok_json(await http.get(f"/api/v1/events/{event_id}"), 200)
        assert event["seats_left"] == seats_left - expected_winners * seats_each
        assert event["seats_left"] >= 0

        # Whatever the race left over is still bookable, and not one seat more.
        late = await http.post(
            f"/api/v1/events/{event_id}/bookings", json={"seats": event["seats_left"] + 1}, headers=bearer(booker)
        )
        assert late.status_code == 409, late.text
        assert late.json()["error"]["code"] == "event_full"
        if event["seats_left"]:
            rest = await http.post(
                f"/api/v1/events/{event_id}/bookings", json={"seats": event["seats_left"]}, headers=bearer(booker)
            )
            assert rest.status_code == 201, rest.text

    booked_seats = await session.scalar(
        select(func.coalesce(func.sum(Booking.seats), 0)).where(
            Booking.event_id == event_id, Booking.status.in_(("pending", "confirmed"))
        )
    )
    confirmed_seats = await session.scalar(
        select(func.coalesce(func.sum(Booking.seats), 0)).where(
            Booking.event_id == event_id, Booking.status == "confirmed"
        )
    )
    seats_booked_column = await session.scalar(select(Event.seats_booked).where(Event.id == event_id))
    await session.commit()
    # Every seat is held by exactly one active booking, and the counter agrees with the bookings.
    assert booked_seats == CAPACITY
    assert seats_booked_column == CAPACITY
    assert confirmed_seats == CAPACITY - seats_left + expected_winners * seats_each


class SlowCountingGateway:
    """The test gateway with a provider's round-trip time, counting every charge it receives.

    A charge is answered once `expected` charges are in flight, or after `latency` seconds: a
    correct app lets only one charge through (which then waits out the latency), while an app that
    lets several through has them all arrive together, whatever the machine's speed.
    """

    def __init__(self, expected: int, latency: float = 0.5) -> None:
        self.inner = TestPaymentGateway()
        self.expected = expected
        self.latency = latency
        self.charges = 0
        self._all_in = asyncio.Event()

    async def charge(self, *, amount_cents: int, currency: str, card_number: str, description: str) -> ChargeResult:
        self.charges += 1
        if self.charges >= self.expected:
            self._all_in.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_in.wait(), timeout=self.latency)
        return await self.inner.charge(
            amount_cents=amount_cents, currency=currency, card_number=card_number, description=description
        )


async def test_simultaneous_payments_for_one_booking_charge_the_card_once(app, in_process_server, session):
    gateway = SlowCountingGateway(expected=PAYERS)
    app.state.payment_gateway = gateway
    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as http:
        _, organizer = await register(http)
        _, token = await register(http)
        event = await create_event(http, organizer, price_cents=4000)
        response = await book(http, token, event["id"], seats=2)
        assert response.status_code == 201, response.text
        booking_id = response.json()["id"]

        results = await asyncio.gather(*(pay(http, token, booking_id, GOOD_CARD) for _ in range(PAYERS)))

    statuses = Counter(r.status_code for r in results)
    assert statuses == {200: 1, 409: PAYERS - 1}, [r.text for r in results]
    # The others find the attempt in progress (the gateway is called with no transaction open)
    # or the booking already confirmed.
    assert {r.json()["error"]["code"] for r in results if r.status_code == 409} <= {
        "payment_in_progress",
        "booking_not_pending",
    }
    rows = list(await session.scalars(select(Payment).where(Payment.booking_id == booking_id)))
    await session.commit()
    assert [(p.status, p.amount_cents) for p in rows] == [("succeeded", 8000)]
    # The card is charged once ("nothing was charged twice"), and every charge made is on record.
    assert gateway.charges == len(rows) == 1


EDITED_EVENTS = 6


async def test_simultaneous_edits_of_one_event_get_distinct_versions_and_both_changes_are_told(
    app, in_process_server, session
):
    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as http:
        _, organizer = await register(http)
        _, attendee = await register(http)
        events = [await create_event(http, organizer, price_cents=0) for _ in range(EDITED_EVENTS)]
        for event in events:
            assert (await book(http, attendee, event["id"])).status_code == 201

        # Every event gets two edits at once: one moves it to another hall, one renames it.
        edits = [
            http.patch(f"/api/v1/events/{event['id']}", json=change, headers=bearer(organizer))
            for i, event in enumerate(events)
            for change in ({"venue": f"Hall {i}"}, {"title": f"Renamed {i}"})
        ]
        responses = await asyncio.gather(*edits)
        assert [r.status_code for r in responses] == [200] * len(edits), [r.text for r in responses]
        for venue_edit, title_edit in zip(responses[0::2], responses[1::2], strict=True):
            assert {venue_edit.json()["version"], title_edit.json()["version"]} == {2, 3}

        async def told_once_with_both_changes() -> list[dict] | None:
            listing = await http.get("/api/v1/notifications?type=event_updated&limit=100", headers=bearer(attendee))
            body = listing.json()
            unread = [n for n in body["items"] if n["read_at"] is None]
            if len(unread) != EDITED_EVENTS:
                return None
            for i, event in enumerate(events):
                [item] = [n for n in unread if n["data"]["event_id"] == event["id"]]
                if f"Venue: Main Hall → Hall {i}" not in item["body"] or f"→ Renamed {i}" not in item["body"]:
                    return None
            return unread

        unread = await eventually(told_once_with_both_changes)
        assert sorted(n["data"]["event_id"] for n in unread) == sorted(e["id"] for e in events)
    versions = list(await session.scalars(select(Event.version).where(Event.id.in_([e["id"] for e in events]))))
    await session.commit()
    assert versions == [3] * EDITED_EVENTS


RACES = 12


@pytest.fixture
def outbox_held() -> Iterator[None]:
    """Services run without a worker here: the outbox queues nothing (no job outlives the test)."""
    import jobs.dispatch
    from webapp.outbox.services import set_dispatcher

    set_dispatcher(lambda name, kwargs: None)
    yield
    set_dispatcher(jobs.dispatch.send_by_name)


async def reminder_starts(engine, event_id: int) -> tuple[datetime, list[datetime], int]:
    """The event's start now, every unsent reminder's start, and its confirmed attendees."""
    async with create_sessionmaker(engine)() as db:
        start = await db.scalar(select(Event.starts_at).where(Event.id == event_id))
        reminders = list(await db.scalars(select(Reminder.event_starts_at).where(Reminder.event_id == event_id)))
        confirmed = await db.scalar(
            select(func.count(Booking.id)).where(Booking.event_id == event_id, Booking.status == "confirmed")
        )
        await db.rollback()
    return start, reminders, int(confirmed or 0)


async def racing_event(engine, price_cents: int) -> tuple[User, int, list[User], datetime]:
    maker = create_sessionmaker(engine)
    async with maker() as db:
        people = [
            User(email=f"racer-{price_cents}-{i}@example.com", name=f"Racer {i}", password_hash="!", timezone="UTC")
            for i in range(RACES + 1)
        ]
        db.add_all(people)
        await db.commit()
    organizer, *bookers = people
    start = utcnow().replace(microsecond=0) + timedelta(days=10)
    async with maker() as db:
        event = await EventService(db).create(
            organizer,
            EventDetails(
                title="Moving Target",
                description="",
                venue="Hall",
                starts_at=start,
                ends_at=start + timedelta(hours=2),
                timezone="UTC",
                capacity=100,
                price_cents=price_cents,
                currency="EUR",
            ),
        )
        await db.commit()
    return organizer, event.id, bookers, start


async def move(engine, organizer: User, event_id: int, start: datetime) -> None:
    """The organizer's edit, straight away: its first statement takes the event row, so a booking
    started at the same moment has usually read the event and not yet confirmed."""
    async with create_sessionmaker(engine)() as db:
        moved = {"starts_at": start, "ends_at": start + timedelta(hours=2)}
        await EventChangeService(db).update(organizer, event_id, moved)
        await db.commit()


async def assert_reminders_follow_the_move(engine, event_id: int, start, race: int) -> None:
    """After race `race` (0-based) the event starts race+1 hours after `start`, race+1 bookings are
    confirmed, and every one of their 3 reminders is computed from the new start."""
    starts_at, reminders, confirmed = await reminder_starts(engine, event_id)
    assert confirmed == race + 1
    assert len(reminders) == 3 * confirmed
    assert starts_at == start + timedelta(hours=race + 1)
    assert set(reminders) == {starts_at}, (
        f"race {race}: reminders for {sorted(set(reminders))}, the event starts {starts_at}"
    )


async def test_a_free_booking_confirmed_while_its_event_moves_gets_reminders_for_the_new_start(engine, outbox_held):
    organizer, event_id, bookers, start = await racing_event(engine, price_cents=0)

    async def confirm(booker: User) -> None:
        async with create_sessionmaker(engine)() as db:
            await BookingService(db).book(booker, event_id, 1)
            await db.commit()

    for i, booker in enumerate(bookers):
        await asyncio.gather(move(engine, organizer, event_id, start + timedelta(hours=i + 1)), confirm(booker))
        await assert_reminders_follow_the_move(engine, event_id, start, race=i)


async def test_a_payment_confirmed_while_its_event_moves_gets_reminders_for_the_new_start(engine, outbox_held):
    organizer, event_id, bookers, start = await racing_event(engine, price_cents=1500)
    maker = create_sessionmaker(engine)
    bookings = []
    for booker in bookers:
        async with maker() as db:
            bookings.append((await BookingService(db).book(booker, event_id, 1)).id)
            await db.commit()

    async def confirm(booker: User, booking_id: int) -> None:
        async with maker() as db:  # the payment's units of work, as the controller runs them
            payments = PaymentService(db, TestPaymentGateway())
            payment = await payments.start(booker, booking_id, GOOD_CARD)
            await db.commit()
            paid = await payments.finish(booker, payment.id, await payments.charge(payment, GOOD_CARD))
            await db.commit()
            assert paid.status == "confirmed"

    for i, (booker, booking_id) in enumerate(zip(bookers, bookings, strict=True)):
        await asyncio.gather(
            move(engine, organizer, event_id, start + timedelta(hours=i + 1)), confirm(booker, booking_id)
        )
        await assert_reminders_follow_the_move(engine, event_id, start, race=i)


class RoundTripGateway:
    """The test gateway with a provider's varying round-trip time, so a payment and the scheduler's
    release overlap in every possible order."""

    def __init__(self) -> None:
        self.inner = TestPaymentGateway()

    async def charge(self, *, amount_cents: int, currency: str, card_number: str, description: str) -> ChargeResult:
        await asyncio.sleep(random.uniform(0, 0.02))
        return await self.inner.charge(
            amount_cents=amount_cents, currency=currency, card_number=card_number, description=description
        )


async def test_a_payment_racing_the_release_of_its_hold_either_confirms_or_finds_it_released(
    app, in_process_server, session
):
    app.state.payment_gateway = RoundTripGateway()
    maker = create_sessionmaker(session.bind)
    hold = timedelta(minutes=app.state.settings.payment_hold_minutes)
    outcomes: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as http:
        _, organizer = await register(http)
        _, token = await register(http)
        event = await create_event(http, organizer, capacity=2 * RELEASE_ROUNDS, price_cents=1500)

        async def after(delay: float, work: Any) -> Any:
            await asyncio.sleep(delay)
            return await work

        for _ in range(RELEASE_ROUNDS):
            response = await book(http, token, event["id"], seats=2)
            assert response.status_code == 201, response.text
            booking_id = response.json()["id"]
            paid, ticked = await asyncio.gather(
                after(random.uniform(0, 0.05), pay(http, token, booking_id, GOOD_CARD)),
                after(random.uniform(0, 0.01), tick(maker, now=utcnow() + hold + timedelta(minutes=1))),
            )
            booking = await session.get(Booking, booking_id, populate_existing=True)
            charged = list(
                await session.scalars(
                    select(Payment).where(Payment.booking_id == booking_id, Payment.status == "succeeded")
                )
            )
            await session.commit()
            if paid.status_code == 200:
                assert ticked.released == 0 and booking.status == "confirmed" and len(charged) == 1
                outcomes["paid first"] += 1
            else:
                assert paid.status_code == 409, paid.text
                assert paid.json()["error"]["code"] == "hold_expired"
                assert ticked.released == 1 and booking.status == "cancelled" and charged == []
                outcomes["released first"] += 1

    active = await session.scalar(
        select(func.coalesce(func.sum(Booking.seats), 0)).where(
            Booking.event_id == event["id"], Booking.status.in_(("pending", "confirmed"))
        )
    )
    seats_booked = await session.scalar(select(Event.seats_booked).where(Event.id == event["id"]))
    await session.commit()
    assert seats_booked == active == 2 * outcomes["paid first"]
    print(f"payment vs release over {RELEASE_ROUNDS} rounds: {dict(outcomes)}")


async def test_simultaneous_requests_with_one_idempotency_key_book_once(app, in_process_server, session):
    """A client retrying before the first answer arrived: two requests with one key at the same moment."""
    async with (
        httpx.AsyncClient(base_url=in_process_server, timeout=30) as first,
        httpx.AsyncClient(base_url=in_process_server, timeout=30) as second,
    ):
        _, organizer = await register(first)
        _, token = await register(first)
        event = await create_event(first, organizer, capacity=KEYED_ROUNDS * 2, price_cents=1000)
        path = f"/api/v1/events/{event['id']}/bookings"
        for round_ in range(KEYED_ROUNDS):
            headers = {**bearer(token), "Idempotency-Key": f"order-{round_}"}
            answers = await asyncio.gather(
                first.post(path, json={"seats": 2}, headers=headers),
                second.post(path, json={"seats": 2}, headers=headers),
            )
            assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
            assert answers[0].json()["id"] == answers[1].json()["id"]

    bookings = await session.scalar(select(func.count()).select_from(Booking).where(Booking.event_id == event["id"]))
    seats_booked = await session.scalar(select(Event.seats_booked).where(Event.id == event["id"]))
    await session.commit()
    assert bookings == KEYED_ROUNDS
    assert seats_booked == 2 * KEYED_ROUNDS
