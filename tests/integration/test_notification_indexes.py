"""Every hot query on notifications is answered through an index, checked with the planner.

100,000 notifications over 200 users are seeded with one INSERT … SELECT, the table is analysed,
then each service call runs for real while its statements are captured as the driver received
them (SQL and parameters, nothing retyped); each captured statement is then EXPLAINed.
PostgreSQL: no Seq Scan on notifications. SQLite: every step on notifications is a SEARCH
through an index, never a SCAN. CI runs this file on both (.ci/run runs the suite twice).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, Integer, String, case, event, func, insert, literal, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs import retention
from webapp.auth.models import User
from webapp.db import UTCDateTime, create_engine, create_sessionmaker, utcnow
from webapp.notifications.delivery_reports import DeliveryReports
from webapp.notifications.models import NOTIFICATION_TYPES, Notification, NotificationCounter
from webapp.notifications.services import NewNotification, NotificationService
from webapp.settings import DatabaseTimeouts

USERS = 200
PER_USER = 500  # 100,000 rows
SUBJECTS = 2_000  # events the notifications are about: 50 rows each
UNREAD_PER_USER = 20
UNSEEN_PER_USER = 5
# Reads, updates and deletes; a plain INSERT has nothing to scan.
NOTIFICATIONS = re.compile(r'\b(FROM|UPDATE|JOIN)\s+"?notifications"?(\s|$)', re.IGNORECASE)


async def seed(engine: AsyncEngine) -> int:
    """Inserts USERS users and USERS × PER_USER notifications; returns the first user's id."""
    now = utcnow()
    total = USERS * PER_USER
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            series = select(func.generate_series(1, total).label("g")).subquery("s")
        else:  # SQLite has no generate_series unless built with it: a recursive CTE counts instead
            counter = select(literal(1).label("g")).cte("s", recursive=True)
            series = counter.union_all(select(counter.c.g + 1).where(counter.c.g < total))
        g = series.c.g
        await conn.execute(
            insert(User).from_select(
                ["email", "name", "password_hash", "timezone", "role", "created_at"],
                select(
                    literal("seed") + g.cast(String) + literal("@example.com"),
                    literal("Seed"),
                    literal("x"),
                    literal("UTC"),
                    literal("member"),
                    literal(now, UTCDateTime),
                ).where(g <= USERS),
            )
        )
        first_user = int(await conn.scalar(select(func.min(User.id))) or 0)
        seq = (g - 1) % PER_USER + 1
        empty_json = literal_column("'{}'")
        if conn.dialect.name == "postgresql":
            empty_json = empty_json.cast(JSON)  # SQLite would turn CAST(… AS JSON) into a number
        types = case(*((g % len(NOTIFICATION_TYPES) == i, t) for i, t in enumerate(NOTIFICATION_TYPES)))
        await conn.execute(
            insert(Notification).from_select(
                [
                    "user_id",
                    "seq",
                    "type",
                    "title",
                    "body",
                    "url",
                    "data",
                    "subject_kind",
                    "subject_id",
                    "dedupe_key",
                    "created_at",
                    "seen_at",
                    "read_at",
                    "expires_at",
                ],
                select(
                    literal(first_user, Integer) + (g - 1) // PER_USER,
                    seq,
                    types,
                    literal("Seeded"),
                    literal(""),
                    literal("/"),
                    empty_json,
                    literal("event"),
                    g % SUBJECTS,
                    literal("seed:") + g.cast(String),
                    literal(now - timedelta(days=60), UTCDateTime),
                    case((seq > PER_USER - UNSEEN_PER_USER, None), else_=literal(now, UTCDateTime)),
                    case((seq > PER_USER - UNREAD_PER_USER, None), else_=literal(now, UTCDateTime)),
                    # One in ten expires: half of those long ago, half in the future.
                    case(
                        (g % 20 == 0, literal(now - timedelta(days=45), UTCDateTime)),
                        (g % 20 == 10, literal(now + timedelta(days=5), UTCDateTime)),
                        else_=None,
                    ),
                ),
            )
        )
        await conn.execute(
            insert(NotificationCounter).from_select(
                ["user_id", "last_seq", "version"],
                select(User.id, literal(PER_USER), literal(1)),
            )
        )
        await conn.execute(text("ANALYZE"))
    return first_user


@pytest.fixture
async def seeded(engine: AsyncEngine) -> AsyncIterator[int]:
    # Seeded through an engine of its own without the app's timeouts: the server-side limit could
    # be lifted with SET LOCAL, but asyncpg's own command timeout (the app's limit + 1 s) cannot, and
    # on a busy machine one INSERT of 100,000 rows and their indexes outlasts it.
    patient = create_engine(
        engine.url.render_as_string(hide_password=False),
        timeouts=DatabaseTimeouts(connect_seconds=30, statement_seconds=600),
    )
    try:
        first_user = await seed(patient)
    finally:
        await patient.dispose()
    yield first_user
    # Fresh statistics for the emptied table, so later tests do not plan against 100k ghosts.
    async with engine.begin() as conn:
        await conn.execute(Notification.__table__.delete())
        await conn.execute(text("ANALYZE"))


class Captured:
    """Statements on notifications, exactly as the service sent them to the driver."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not many and NOTIFICATIONS.search(statement) and not statement.lstrip().upper().startswith("EXPLAIN"):
            self.statements.append((statement, tuple(parameters) if isinstance(parameters, list) else parameters))


async def plan(engine: AsyncEngine, statement: str, parameters: Any) -> tuple[list[str], str]:
    """(the scans on notifications, the whole plan as text)."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            result = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
            raw = result.scalar_one()
            tree = json.loads(raw) if isinstance(raw, str) else raw
            nodes: list[dict[str, Any]] = []

            def walk(node: dict[str, Any]) -> None:
                nodes.append(node)
                for child in node.get("Plans", []):
                    walk(child)

            walk(tree[0]["Plan"])
            scans = [
                " ".join(
                    [n["Node Type"], n.get("Index Name", "")] + [c.get("Index Name", "") for c in n.get("Plans", [])]
                )
                for n in nodes
                if n.get("Relation Name") == "notifications" and "Scan" in n["Node Type"]
            ]
            text_plan = "\n".join(r[0] for r in await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
        else:
            rows = list(await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            details = [str(row[-1]) for row in rows]
            scans = [d for d in details if re.match(r"(SCAN|SEARCH) notifications\b", d)]
            text_plan = "\n".join(details)
        await conn.rollback()
    return scans, text_plan


def is_full_scan(scan: str) -> bool:
    return scan.startswith("Seq Scan") or scan.startswith("SCAN ")


async def run_and_explain(
    engine: AsyncEngine, call: Callable[[NotificationService], Awaitable[Any]]
) -> list[tuple[str, list[str], str]]:
    captured = Captured()
    event.listen(engine.sync_engine, "before_cursor_execute", captured)
    try:
        async with create_sessionmaker(engine)() as session:
            await call(NotificationService(session))
            await session.commit()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", captured)
    assert captured.statements, "the call issued no statement on notifications"
    return [(statement, *(await plan(engine, statement, params))) for statement, params in captured.statements]


def a_user(first_user: int) -> int:
    return first_user + USERS // 2


Call = Callable[[NotificationService], Awaitable[Any]]

# name → (the service call as the app makes it, the index it must use; None: any index will do).
HOT_QUERIES: dict[str, tuple[Callable[[int], Call], str | None]] = {
    # Cancellation: unread reminders and updates about an event become obsolete (jobs/fanout.py).
    "subject lookup, unread (cancellation)": (
        lambda first: (
            lambda service: service.unread_about(
                "event", 77, ("event_reminder", "event_updated"), list(range(first, first + USERS))
            )
        ),
        "ix_notifications_subject",
    ),
    # Collapsing: earlier updates of an event for a chunk of recipients (jobs/fanout.py).
    "subject lookup (collapsing updates)": (
        lambda first: lambda service: service.about("event", 77, ("event_updated",), list(range(first, first + USERS))),
        "ix_notifications_subject",
    ),
    # Up to the seq the dropdown showed: the planner may take the partial unseen index or the
    # (user_id, seq) one; either reads one user's rows only (no full scan is checked above).
    "mark_seen": (lambda first: lambda service: service.mark_seen(a_user(first), up_to_seq=2**31 - 1), None),
    "inbox type filter": (
        lambda first: lambda service: service.listing(a_user(first), "all", "event_updated", 20),
        "ix_notifications_user_type_seq",
    ),
    "inbox type filter, next page": (
        lambda first: lambda service: service.listing(a_user(first), "all", "event_updated", 20, cursor=250),
        "ix_notifications_user_type_seq",
    ),
    "inbox unread": (lambda first: lambda service: service.listing(a_user(first), "unread", None, 20), None),
    "inbox newest by seq": (lambda first: lambda service: service.listing(a_user(first), "all", None, 20), None),
    # The inbox's Archived filter: only archived rows are in its partial index.
    "inbox archived": (
        lambda first: lambda service: service.listing(a_user(first), "archived", None, 20),
        "ix_notifications_user_archived",
    ),
    "archive all read": (lambda first: lambda service: service.archive_read(a_user(first), PER_USER - 3), None),
    "unread count": (lambda first: lambda service: service.unread_count(a_user(first)), None),
    "replay since seq": (lambda first: lambda service: service.since(a_user(first), PER_USER - 30, 100), None),
    "mark all read": (lambda first: lambda service: service.mark_all_read(a_user(first), PER_USER - 3), None),
    # The scheduler's retention step: one batch of long-expired rows, oldest first.
    "retention purge": (
        lambda first: lambda service: retention.purge_expired_notifications(service.session, utcnow()),
        "ix_notifications_expires_at",
    ),
    # A delivery report's counts (one aggregate query per list of reports; the seeded rows have
    # no report, so the partial index on report_id holds none of them).
    "delivery report counts": (
        lambda first: lambda service: DeliveryReports(service.session).of_event(77, 10),
        "ix_notifications_report_id",
    ),
    # The flush of "delivered live" times: by primary key (SQLite's rowid, PostgreSQL's index).
    "delivered flush": (
        lambda first: lambda service: service.mark_delivered({i: 1.7e9 + i / 1000 for i in range(first, first + 900)}),
        None,
    ),
    "notify (dedupe check)": (
        lambda first: (
            lambda service: service.notify(
                NewNotification(user_id=a_user(first), type="general", title="Hi", dedupe_key="seed:123")
            )
        ),
        None,
    ),
}


async def test_every_hot_query_on_100k_notifications_uses_an_index(engine, seeded):
    """One seeding for all queries; every failure is listed at once."""
    failures: list[str] = []
    for name, (make_call, index) in HOT_QUERIES.items():
        explained = await run_and_explain(engine, make_call(seeded))
        for statement, scans, whole_plan in explained:
            if not scans:
                failures.append(f"{name}: no access to notifications in the plan of\n{statement}\n{whole_plan}")
            elif any(is_full_scan(scan) for scan in scans):
                failures.append(f"{name}: {scans} in the plan of\n{statement}\n{whole_plan}")
        used = " | ".join(scan for _, scans, _ in explained for scan in scans)
        if index is not None and index not in used.split():
            failures.append(f"{name}: expected {index}, the plan used {used}")
    assert not failures, "\n\n".join(failures)
