"""Email for what was missed, against a real SMTP server on a real socket (aiosmtpd, started by
the test). Time is injected into the scheduler's tick (`now=`), never slept: the notifications
are written now and the tick is run as if 31 minutes had passed."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from jobs import runtime
from jobs.email import send_email
from jobs.scheduler import tick
from tests.crowd import UNUSABLE_PASSWORD_HASH
from tests.services import free_port
from tidings.app import create_app
from webapp.auth.models import User
from webapp.db import create_sessionmaker, utcnow
from webapp.events.models import Event
from webapp.notifications import offsite
from webapp.notifications.models import Notification
from webapp.notifications.offsite_models import OffsiteDelivery
from webapp.notifications.services import NewNotification, NotificationService
from webapp.outbox.models import OutboxMessage
from webapp.outbox.services import hand_overs_finished
from webapp.preferences.plan import ChannelPlan
from webapp.preferences.services import PreferenceService
from webapp.signed_links import read_link

SEND_EMAIL = inspect.unwrap(send_email.fn)  # the coroutine, run in this test's loop
DIGEST = timedelta(minutes=31)  # past EMAIL_DIGEST_DELAY_MINUTES (30 by default)


class Recorder:
    """An SMTP server's handler that keeps every message it accepted."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield recorder, controller.port
    finally:
        controller.stop()


@pytest.fixture
async def mail_settings(settings: Any, smtp: tuple[Recorder, int]) -> AsyncIterator[Any]:
    configured = replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp[1]}", smtp_timeout_seconds=2.0)
    runtime.configure(configured)
    yield configured
    await runtime.dispose()
    runtime.configure(settings)


@pytest.fixture
def maker(engine: Any) -> Any:
    return create_sessionmaker(engine)


async def person(maker: Any, email: str, name: str = "Ada Lovelace") -> int:
    async with maker() as session:
        user = User(email=email, name=name, password_hash=UNUSABLE_PASSWORD_HASH, timezone="Europe/Berlin")
        session.add(user)
        await session.commit()
        return user.id


async def notify(maker: Any, *items: NewNotification) -> list[int]:
    async with maker() as session:
        created = await NotificationService(session).notify_many(list(items))
        await session.commit()
    return [c.id for c in created]


def item(user_id: int, type_: str = "general", title: str = "Doors open at seven", **extra: Any) -> NewNotification:
    return NewNotification(
        **{"user_id": user_id, "type": type_, "title": title, "body": "See you there", "url": "/bookings", **extra}
    )


async def tick_at(maker: Any, now: datetime) -> None:
    await tick(maker, now=now)
    await hand_overs_finished()


async def run_email_jobs(sent: list[tuple[str, dict[str, Any]]]) -> int:
    """Runs the email jobs handed over; returns how many outbox rows they were for. (A tick at an
    injected time far ahead also hands over again the rows it just wrote, which then look
    overdue: those second runs must send nothing more.)"""
    jobs_run = [kwargs for name, kwargs in sent if name == "send_email"]
    sent[:] = [m for m in sent if m[0] != "send_email"]
    for kwargs in jobs_run:
        await SEND_EMAIL(**kwargs)
    await hand_overs_finished()
    return len({kwargs["outbox_id"] for kwargs in jobs_run})


async def deliveries(maker: Any, user_id: int) -> list[OffsiteDelivery]:
    async with maker() as session:
        rows = list(
            await session.scalars(
                select(OffsiteDelivery).where(OffsiteDelivery.user_id == user_id).order_by(OffsiteDelivery.id)
            )
        )
        session.expunge_all()  # keep what was read, then end the read (SQLite's write lock)
        await session.rollback()
    return rows


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())


def open_links(text: str) -> list[str]:
    return [word for word in text.split() if "/n/" in word]


async def test_a_booking_confirmation_is_emailed_at_once_and_its_link_opens_it(maker, mail_settings, smtp, sent):
    recorder, _ = smtp
    user_id = await person(maker, "ada@example.com")
    [notification_id] = await notify(
        maker, item(user_id, "booking_confirmed", "Booking confirmed: <Quiz> & Pie", url="/events/7")
    )
    await tick_at(maker, utcnow())
    assert await run_email_jobs(sent) == 1
    [message] = recorder.messages
    assert recorder.recipients == [["ada@example.com"]]
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "Booking confirmed: <Quiz> & Pie"
    assert message["To"] == "Ada Lovelace <ada@example.com>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = str(message["List-Unsubscribe"])
    assert unsubscribe.startswith("<http://127.0.0.1:8000/unsubscribe/") and unsubscribe.endswith(">")
    claims = read_link(unsubscribe.strip("<>").rsplit("/", 1)[1], "unsubscribe", mail_settings.secret_key)
    assert claims is not None and (claims.user_id, claims.target) == (user_id, "booking_confirmed")
    assert str(message["Message-ID"]).startswith("<tidings.") and str(message["Message-ID"]).endswith("@127.0.0.1>")
    plain, html = parts(message)
    assert "Booking confirmed: <Quiz> & Pie" in plain  # plain text as written
    assert "Booking confirmed: &lt;Quiz&gt; &amp; Pie" in html and "<Quiz>" not in html  # HTML escaped
    [link] = open_links(plain)
    assert link.startswith("http://127.0.0.1:8000/n/") and f'href="{link}"' in html
    assert [(d.channel, d.outcome) for d in await deliveries(maker, user_id)] == [("email", "sent")]

    # The job run again (a redelivery) sends nothing more.
    [outbox_row] = [r for r in await outbox_rows(maker) if r.actor_name == "send_email"]
    assert outbox_row.completed_at is not None
    await SEND_EMAIL(**{**outbox_row.payload, "outbox_id": outbox_row.id})
    assert len(recorder.messages) == 1

    # Following the link marks it seen and read, without a login.
    async with AsyncTestClient(create_app(mail_settings), base_url="http://127.0.0.1:8000") as client:
        client.follow_redirects = False
        opened = await client.get(link.removeprefix("http://127.0.0.1:8000"))
    assert opened.status_code in (302, 303) and opened.headers["location"] == "/events/7"
    async with maker() as session:
        n = await session.get(Notification, notification_id)
        assert n is not None and n.read_at is not None and n.seen_at is not None


async def outbox_rows(maker: Any) -> list[OutboxMessage]:
    async with maker() as session:
        rows = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        session.expunge_all()
        await session.rollback()
    return rows


async def test_unseen_notifications_go_out_as_one_digest_after_the_delay(maker, mail_settings, smtp, sent):
    recorder, _ = smtp
    user_id = await person(maker, "grace@example.com", "Grace Hopper")
    other_id = await person(maker, "alan@example.com", "Alan Turing")
    now = utcnow()
    await notify(maker, item(user_id, title="Venue moved"), item(user_id, "event_updated", title="New start time"))
    await notify(maker, item(user_id, "review_request", title="How was it?"), item(other_id, title="Hello Alan"))
    await tick_at(maker, now)
    await tick_at(maker, now + timedelta(minutes=29))
    assert await run_email_jobs(sent) == 0 and recorder.messages == []
    await tick_at(maker, now + DIGEST)
    assert await run_email_jobs(sent) == 2  # one per person
    by_recipient = {str(m["To"]): m for m in recorder.messages}
    digest = by_recipient["Grace Hopper <grace@example.com>"]
    assert digest["Subject"] == "3 notifications you have not seen on Tidings"
    plain, html = parts(digest)
    for title in ("Venue moved", "New start time", "How was it?"):
        assert title in plain and title in html
    assert len(open_links(plain)) == 3
    token = str(digest["List-Unsubscribe"]).strip("<>").rsplit("/", 1)[1]
    claims = read_link(token, "unsubscribe", mail_settings.secret_key)
    assert claims is not None and claims.target == "digest"
    assert by_recipient["Alan Turing <alan@example.com>"]["Subject"] == "Hello Alan"
    await tick_at(maker, now + DIGEST * 2)
    assert await run_email_jobs(sent) == 0 and len(recorder.messages) == 2


async def test_a_notification_seen_before_the_delay_is_never_emailed(maker, mail_settings, smtp, sent):
    recorder, _ = smtp
    user_id = await person(maker, "edsger@example.com")
    now = utcnow()
    await notify(maker, item(user_id, title="Seen in the page"))
    async with maker() as session:  # the dropdown was opened: what it showed is seen
        await NotificationService(session).mark_seen(user_id, up_to_seq=1)
        await session.commit()
    await notify(maker, item(user_id, title="Arrived later"))
    await tick_at(maker, now + DIGEST)
    assert await run_email_jobs(sent) == 1
    [message] = recorder.messages
    plain, _ = parts(message)
    assert "Arrived later" in plain and "Seen in the page" not in plain
    assert sorted(d.outcome or "" for d in await deliveries(maker, user_id)) == ["seen", "sent"]


async def test_read_and_expired_items_are_never_emailed_and_nothing_left_sends_nothing(
    maker, mail_settings, smtp, sent
):
    recorder, _ = smtp
    user_id = await person(maker, "barbara@example.com")
    now = utcnow()
    [confirmed] = await notify(maker, item(user_id, "booking_confirmed", "Booking confirmed: Gala"))
    await notify(maker, item(user_id, "event_reminder", "Starts in 30 minutes", expires_at=now + timedelta(minutes=10)))
    # Expired by the time the job runs (the job reads the real clock, not the tick's injected one).
    await notify(maker, item(user_id, title="Expired", expires_at=now - timedelta(seconds=1)))
    async with maker() as session:
        await NotificationService(session).mark_read(user_id, confirmed)
        await session.commit()
    await tick_at(maker, now)
    await tick_at(maker, now + DIGEST)
    assert await run_email_jobs(sent) == 1  # the read confirmation and the expired item: one job
    assert recorder.messages == []
    outcomes = {(d.channel, d.outcome) for d in await deliveries(maker, user_id)}
    assert ("email", "read") in outcomes and ("email", "expired") in outcomes
    assert all(r.completed_at is not None for r in await outbox_rows(maker) if r.actor_name == "send_email")


async def test_push_and_email_rows_are_due_as_the_plan_says(maker, mail_settings, sent):
    user_id = await person(maker, "katherine@example.com")
    now = utcnow()
    await notify(maker, item(user_id, "event_reminder", "Starts in an hour"), item(user_id, "payment_failed", "Card"))
    await notify(maker, item(user_id, "event_updated", "New venue"))
    rows = await deliveries(maker, user_id)
    due = {(r.channel, r.digest): r.due_at for r in rows}
    assert sorted(due) == [("email", False), ("email", True), ("push", False)]
    assert abs((due[("push", False)] - now).total_seconds()) < 5
    assert abs((due[("email", False)] - now).total_seconds()) < 5  # payment failed: at once
    assert abs((due[("email", True)] - (now + timedelta(minutes=30))).total_seconds()) < 5
    assert len([r for r in rows if r.channel == "push"]) == 2  # the reminder and the failed payment
    await tick_at(maker, now + timedelta(seconds=5))
    pushes = [kwargs for name, kwargs in sent if name == "send_push"]
    async with maker() as session:
        ids = list(
            await session.scalars(
                select(Notification.id)
                .where(Notification.type.in_(["event_reminder", "payment_failed"]))
                .order_by(Notification.id)
            )
        )
        await session.rollback()
    assert pushes == [{"user_id": user_id, "notification_ids": ids, "outbox_id": pushes[0]["outbox_id"]}]
    emails = [kwargs for name, kwargs in sent if name == "send_email"]
    assert len(emails) == 1 and len(emails[0]["delivery_ids"]) == 1  # the digest item is not due yet


async def an_event(maker: Any, organizer_id: int, starts_in: timedelta) -> tuple[int, datetime]:
    start = utcnow().replace(microsecond=0) + starts_in
    async with maker() as session:
        event = Event(
            organizer_id=organizer_id,
            title="Gala",
            venue="Hall",
            description="",
            timezone="UTC",
            starts_at=start,
            ends_at=start + timedelta(hours=2),
            capacity=10,
            seats_booked=0,
            price_cents=0,
            currency="EUR",
        )
        session.add(event)
        await session.commit()
        return event.id, start


async def test_quiet_hours_defer_push_and_email_to_the_end_of_the_window(maker, mail_settings, sent):
    """With the user's real quiet hours (their zone is Europe/Berlin): everything waits for the
    window's end and goes as one email, except a reminder of an event that starts before then."""
    user_id = await person(maker, "hedy@example.com")
    now = utcnow()
    local = now.astimezone(ZoneInfo("Europe/Berlin"))
    async with maker() as session:
        start, end = local - timedelta(hours=1), local + timedelta(hours=2)
        await PreferenceService(session).set_quiet_hours(user_id, start.strftime("%H:%M"), end.strftime("%H:%M"))
        await session.commit()
    morning = end.replace(second=0, microsecond=0).astimezone(UTC)
    soon_id, _ = await an_event(maker, user_id, starts_in=timedelta(hours=1))
    await notify(
        maker,
        item(user_id, "booking_confirmed", "Booking confirmed"),
        item(user_id, "payment_failed", "Card declined"),
        item(user_id, title="News"),
    )
    assert {r.due_at for r in await deliveries(maker, user_id)} == {morning}
    [urgent] = await notify(
        maker, item(user_id, "event_reminder", "Starts in an hour", subject_kind="event", subject_id=soon_id)
    )
    due_now = [r for r in await deliveries(maker, user_id) if r.notification_id == urgent]
    assert [r.channel for r in due_now] == ["push"] and abs((due_now[0].due_at - now).total_seconds()) < 5
    await tick_at(maker, now + DIGEST)
    # (One job, handed over twice: the tick 31 minutes ahead finds its own fresh outbox row overdue.)
    assert {(name, tuple(kwargs["notification_ids"]), kwargs["outbox_id"]) for name, kwargs in sent} == {
        ("send_push", (urgent,), sent[0][1]["outbox_id"])
    }
    sent.clear()
    await tick_at(maker, morning)
    assert sorted({name for name, _ in sent}) == ["send_email", "send_push"]
    [email] = {kwargs["outbox_id"]: kwargs for name, kwargs in sent if name == "send_email"}.values()
    assert len(email["delivery_ids"]) == 3  # the three emails in one summary


async def test_a_muted_event_sends_no_push_or_email_but_its_cancellation_email(maker, mail_settings, sent):
    user_id = await person(maker, "grace@example.com")
    event_id, _ = await an_event(maker, user_id, starts_in=timedelta(days=2))
    async with maker() as session:
        await PreferenceService(session).mute_event(user_id, event_id)
        await session.commit()
    about = {"subject_kind": "event", "subject_id": event_id}
    await notify(maker, item(user_id, "event_updated", "New venue", **about))
    await notify(maker, item(user_id, "event_reminder", "Tomorrow", **about))
    assert await deliveries(maker, user_id) == []
    [cancelled] = await notify(maker, item(user_id, "event_cancelled", "Gala cancelled", **about))
    rows = await deliveries(maker, user_id)
    assert [(r.notification_id, r.channel) for r in rows] == [(cancelled, "email")]
    async with maker() as session:
        await PreferenceService(session).unmute_event(user_id, event_id)
        await session.commit()
    [update] = await notify(maker, item(user_id, "event_updated", "Later start", **about))
    assert (update, "email") in [(r.notification_id, r.channel) for r in await deliveries(maker, user_id)]


async def test_the_event_a_notification_is_about_reaches_the_plan(maker, mail_settings, monkeypatch):
    user_id = await person(maker, "frances@example.com")
    start = utcnow().replace(microsecond=0) + timedelta(days=2)
    async with maker() as session:
        event = Event(
            organizer_id=user_id,
            title="Gala",
            venue="Hall",
            description="",
            timezone="UTC",
            starts_at=start,
            ends_at=start + timedelta(hours=2),
            capacity=10,
            seats_booked=0,
            price_cents=0,
            currency="EUR",
        )
        session.add(event)
        await session.commit()
        event_id = event.id
    asked: list[tuple[str, int | None, datetime | None]] = []
    real = offsite.plan_channels

    async def spy(session: Any, user_ids: Any, type: str, **kwargs: Any) -> dict[int, ChannelPlan]:  # noqa: A002
        asked.append((type, kwargs["event_id"], kwargs["event_starts_at"]))
        return await real(session, user_ids, type, **kwargs)

    monkeypatch.setattr(offsite, "plan_channels", spy)
    await notify(
        maker,
        item(user_id, "event_reminder", "Soon", subject_kind="event", subject_id=event_id),
        item(
            user_id, "booking_confirmed", "Booked", subject_kind="booking", subject_id=99, data={"event_id": event_id}
        ),
        item(user_id, title="Hello"),
    )
    assert sorted(asked, key=str) == sorted(
        [("event_reminder", event_id, start), ("booking_confirmed", event_id, start), ("general", None, None)], key=str
    )


async def test_a_mail_server_that_is_down_gets_the_email_later_not_never(
    maker, settings, mail_settings, smtp, sent, refused_port
):
    recorder, _ = smtp
    user_id = await person(maker, "radia@example.com")
    await notify(maker, item(user_id, "booking_confirmed", "Booking confirmed: Expo"))
    await tick_at(maker, utcnow())
    [job] = [kwargs for name, kwargs in sent if name == "send_email"]
    runtime.configure(replace(mail_settings, smtp_url=f"smtp://127.0.0.1:{refused_port}"))
    with pytest.raises(OSError):
        await SEND_EMAIL(**job)
    [row] = await deliveries(maker, user_id)
    assert row.done_at is None and row.sending_at is None  # free for the retry
    [outbox_row] = [r for r in await outbox_rows(maker) if r.actor_name == "send_email"]
    assert outbox_row.completed_at is None  # the outbox sweep hands it over again
    runtime.configure(mail_settings)  # the server is back
    await SEND_EMAIL(**job)
    assert [m["Subject"] for m in recorder.messages] == ["Booking confirmed: Expo"]
    [outbox_row] = [r for r in await outbox_rows(maker) if r.actor_name == "send_email"]
    assert outbox_row.completed_at is not None


async def test_a_second_run_waits_while_another_is_sending(maker, mail_settings, smtp, sent):
    recorder, _ = smtp
    user_id = await person(maker, "mary@example.com")
    await notify(maker, item(user_id, "booking_confirmed", "Booking confirmed: Fair"))
    await tick_at(maker, utcnow())
    [job] = [kwargs for name, kwargs in sent if name == "send_email"]
    async with maker() as session:  # an attempt that started a moment ago and has not finished
        [row] = list(await session.scalars(select(OffsiteDelivery)))
        row.sending_at = utcnow()
        await session.commit()
    with pytest.raises(offsite.SendInProgress):
        await SEND_EMAIL(**job)
    assert recorder.messages == []


async def test_production_without_a_mail_server_plans_no_email(maker, settings, monkeypatch):
    from webapp.notifications import offsite as module

    production = replace(settings, env="production", smtp_url=None)
    monkeypatch.setattr(module, "get_settings", lambda: production)
    user_id = await person(maker, "off@example.com")
    await notify(maker, item(user_id, "booking_confirmed", "Booked"), item(user_id, "event_reminder", "Soon"))
    assert [r.channel for r in await deliveries(maker, user_id)] == ["push"]


async def test_a_tick_claims_all_of_a_users_due_rows_or_none(maker, mail_settings, sent):
    first = await person(maker, "first@example.com")
    second = await person(maker, "second@example.com")
    now = utcnow()
    await notify(maker, item(first, title="One"), item(second, title="Two"))
    await notify(maker, item(first, title="Three"), item(second, title="Four"))
    async with maker() as session:  # a tick with room for one user only
        assert await offsite.claim_due(session, now + DIGEST, limit=1) == 1
        await session.commit()
    await hand_overs_finished()
    [(name, job)] = sent
    assert (name, job["user_id"], len(job["delivery_ids"])) == ("send_email", first, 2)
    assert [r.claimed_at is None for r in await deliveries(maker, second)] == [True, True]


def test_line_breaks_people_wrote_never_reach_a_header(settings):
    from webapp.mail.compose import compose
    from webapp.notifications.offsite import EmailBatch, EmailItem

    title = "Booking confirmed: Gala\r\nBcc: everyone@example.com"
    batch = EmailBatch(
        1,
        "ada@example.com",
        "Ada\nBcc: x@example.com",
        "UTC",
        (EmailItem(1, 1, "booking_confirmed", title, "", "/", utcnow(), False),),
    )
    message = compose(settings, batch)
    assert message["Subject"] == "Booking confirmed: Gala Bcc: everyone@example.com"
    assert message["Bcc"] is None and "\n" not in str(message["To"])
