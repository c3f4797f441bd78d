"""Demo data for `make run`: loaded when absent; `fresh` empties the database first, so the demo's
times are relative to now again (an event about to start, one just past to review)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select

from webapp.auth.models import User
from webapp.auth.services import AccountService
from webapp.bookings.models import Booking, BookingAttendee
from webapp.bookings.payment_gateway import TestPaymentGateway
from webapp.bookings.payments import PaymentService
from webapp.bookings.services import BookingService
from webapp.db import Base, create_engine, create_sessionmaker, utcnow
from webapp.events.models import Event
from webapp.events.services import EventDetails, EventService
from webapp.groups.services import GroupService
from webapp.outbox.models import OutboxMessage
from webapp.outbox.services import hand_overs_finished
from webapp.tables import import_all_models

DEMO_PASSWORD = "tidings-demo"  # noqa: S105 - the published demo password
DEMO_USERS = [
    ("organizer@example.com", "Nora Lindqvist", "organizer"),
    ("host@example.com", "Tomás Okafor", "organizer"),
    ("ada@example.com", "Ada Member", "member"),
    ("ben@example.com", "Ben Member", "member"),
    ("chloe@example.com", "Chloe Member", "member"),
    ("dev@example.com", "Dev Member", "member"),
    ("eli@example.com", "Eli Member", "member"),
    ("admin@example.com", "Site Admin", "admin"),
]
SUCCESS_CARD = "4242 4242 4242 4242"
# Said by `tidings seed-demo` and the README: what a newcomer can try with which login.
DEMO_NOTES = (
    "dev@example.com holds a pending booking for Harbour Food Festival: pay it from Bookings.",
    "ada, ben and chloe are booked on Rooftop Jazz Evening, which starts 35 minutes after loading "
    "(its 30-minute reminder comes 5 minutes in); Autumn Wine Tasting, two days past, awaits their reviews.",
    "ada invited dev to the Friday Crew group.",
)


async def seed(database_url: str, fresh: bool = False) -> bool:
    """Loads the demo (after emptying every table when `fresh`); False when it was already there."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            if fresh:
                import_all_models()
                for table in reversed(Base.metadata.sorted_tables):
                    await session.execute(delete(table))
            elif await session.scalar(select(User.id).where(User.email == DEMO_USERS[0][0])):
                return False
            accounts = AccountService(session)
            users = {}
            for email, name, role in DEMO_USERS:
                zone = "Europe/Berlin" if email != "ben@example.com" else "America/New_York"
                users[email] = await accounts.register(
                    email, DEMO_PASSWORD, name, zone, role="admin" if role == "admin" else "member"
                )
            organizer, host = users["organizer@example.com"], users["host@example.com"]
            ada, ben, chloe, dev = (users[f"{n}@example.com"] for n in ("ada", "ben", "chloe", "dev"))
            now = utcnow().replace(second=0, microsecond=0)

            events = EventService(session)

            def details(
                title: str,
                venue: str,
                starts_in: timedelta,
                hours: float,
                zone: str,
                price: int,
                capacity: int,
                text: str,
            ) -> EventDetails:
                return EventDetails(
                    title=title,
                    description=text,
                    venue=venue,
                    starts_at=now + starts_in,
                    ends_at=now + starts_in + timedelta(hours=hours),
                    timezone=zone,
                    capacity=capacity,
                    price_cents=price,
                    currency="EUR",
                )

            soon = await events.create(
                organizer,
                details(
                    "Rooftop Jazz Evening",
                    "Skyline Terrace, Berlin",
                    timedelta(minutes=35),
                    2,
                    "Europe/Berlin",
                    1500,
                    40,
                    "A quartet, a sunset and the city below. Starts about 35 minutes after the demo was loaded.",
                ),
            )
            upcoming = [
                await events.create(
                    organizer,
                    details(
                        "Python in Production Meetup",
                        "Factory Campus, Berlin",
                        timedelta(days=1, hours=2),
                        3,
                        "Europe/Berlin",
                        0,
                        120,
                        "Talks on running Python services at scale, then pizza.",
                    ),
                ),
                await events.create(
                    host,
                    details(
                        "Harbour Food Festival",
                        "Pier 9, Lisbon",
                        timedelta(days=3),
                        6,
                        "Europe/Lisbon",
                        2500,
                        300,
                        "Forty stalls, three stages, one long table by the water.",
                    ),
                ),
                await events.create(
                    host,
                    details(
                        "Sunrise Trail Run",
                        "Griffith Park, Los Angeles",
                        timedelta(days=6, hours=5),
                        2,
                        "America/Los_Angeles",
                        1000,
                        60,
                        "A 10 km loop with a view at the top. Coffee at the finish.",
                    ),
                ),
                await events.create(
                    organizer,
                    details(
                        "Pottery for Beginners",
                        "Clay Studio, Vienna",
                        timedelta(days=10),
                        3,
                        "Europe/Vienna",
                        4500,
                        12,
                        "Throw your first bowl. All materials included.",
                    ),
                ),
            ]
            bookings = BookingService(session)
            payments = PaymentService(session, TestPaymentGateway())
            for member, seats in ((ada, 2), (ben, 1), (chloe, 1)):
                booking = await bookings.book(member, soon.id, seats)
                payment = await payments.start(member, booking.id, SUCCESS_CARD)
                await payments.finish(member, payment.id, await payments.charge(payment, SUCCESS_CARD))
            await bookings.book(dev, upcoming[2].id, 2)  # left pending: something to pay for

            groups = GroupService(session)
            crew = await groups.create(ada, "Friday Crew")
            for member in (ben, chloe):
                invitation = await groups.invite(ada, crew.id, member.email)
                await groups.accept(member, invitation.id)
            await groups.invite(ada, crew.id, dev.email)

            # A past event with confirmed attendees, so reviews can be tried. Services refuse
            # to create events in the past, so it is written directly.
            past = Event(
                organizer_id=host.id,
                title="Autumn Wine Tasting",
                venue="Cellar 12, Vienna",
                description="Six wines from the Wachau, with the winemaker.",
                timezone="Europe/Vienna",
                starts_at=now - timedelta(days=2),
                ends_at=now - timedelta(days=2) + timedelta(hours=3),
                capacity=30,
                seats_booked=3,
                price_cents=3000,
                currency="EUR",
            )
            session.add(past)
            await session.flush()
            for member in (ada, ben, chloe):
                session.add(
                    Booking(
                        event_id=past.id,
                        user_id=member.id,
                        seats=1,
                        amount_cents=3000,
                        currency="EUR",
                        status="confirmed",
                        confirmed_at=now - timedelta(days=5),
                        attendees=[BookingAttendee(user_id=member.id)],
                    )
                )
            await session.commit()
        await hand_overs_finished()  # the follow-up jobs (confirmations, invitations) are queued
        return True
    finally:
        await engine.dispose()


async def follow_ups_waiting(database_url: str) -> int:
    """Outbox rows whose job has neither completed nor failed."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            waiting = select(func.count(OutboxMessage.id)).where(
                OutboxMessage.completed_at.is_(None), OutboxMessage.failed_at.is_(None)
            )
            return int(await session.scalar(waiting) or 0)
    finally:
        await engine.dispose()
