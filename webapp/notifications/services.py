"""The inbox: creating notifications with gap-free per-user seqs, read state, counts, listing.

Every change takes the user's counter row lock first (SELECT … FOR UPDATE on PostgreSQL; SQLite
serialises writers anyway), so numbering, dedupe checks and counts never race. Doorbell
messages are queued on the session and rung only after the transaction commits.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, cast, get_args

from prometheus_client import Counter
from sqlalchemy import BindParameter, Integer, ScalarSelect, Table, bindparam, event, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from webapp import metrics
from webapp.auth.models import User
from webapp.db import among, insert_on_conflict, on_postgresql, utcnow
from webapp.errors import NotFound, ValidationFailed
from webapp.notifications.models import (
    BODY_MAX,
    NOTIFICATION_TYPES,
    TITLE_MAX,
    ExpiryWatermark,
    Notification,
    NotificationCounter,
)
from webapp.notifications.offsite import plan_deliveries
from webapp.notifications.schemas import ActorJson, NotificationJson
from webapp.pagination import MAX_PAGE_SIZE
from webapp.realtime.doorbell import current_doorbell, queue_after_commit
from webapp.realtime.protocol import ArchiveMessage, CountMessage, Message, NewMessage, ReadMessage, to_wire
from webapp.validation import MAX_INT32, is_int_in

# "archived" lists only archived items; the other three never show them.
InboxStatus = Literal["unread", "read", "all", "archived"]
STATUSES: tuple[str, ...] = get_args(InboxStatus)
# The tables themselves, for Core bulk statements (the ORM would build an object per row).
NOTIFICATIONS = cast(Table, Notification.__table__)
COUNTERS = cast(Table, NotificationCounter.__table__)
MAX_PAGE = MAX_PAGE_SIZE
UNREAD_COUNT_LIMIT = 100  # counts stop here: 100 means "more than 99" ("99+" on the bell)
IN_CHUNK = 900  # stays under every driver's bound-parameter limit
# The first tick (no watermark yet) looks back this far for expiries to tell.
EXPIRY_LOOKBACK = timedelta(hours=1)


@dataclass(frozen=True)
class NewNotification:
    user_id: int
    type: str
    title: str
    body: str = ""
    url: str = "/"
    data: dict[str, Any] = field(default_factory=dict)
    actor_id: int | None = None
    subject_kind: str | None = None
    subject_id: int | None = None
    dedupe_key: str | None = None
    expires_at: datetime | None = None
    report_id: int | None = None  # the delivery report of the fan-out telling it


@dataclass(frozen=True, slots=True)
class NotificationData:
    """A notification as plain data, without the cost of an ORM object: just inserted by
    notify_many, or read back for a stream's replay (with its actor's name, in one statement)."""

    id: int
    user_id: int
    seq: int
    type: str
    title: str
    body: str
    url: str
    data: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None
    actor_id: int | None
    actor_name: str | None
    seen_at: datetime | None = None
    read_at: datetime | None = None
    obsolete_at: datetime | None = None
    archived_at: datetime | None = None

    ROW_FIELDS: ClassVar[tuple[str, ...]] = (
        "user_id",
        "seq",
        "type",
        "title",
        "body",
        "url",
        "data",
        "created_at",
        "expires_at",
        "actor_id",
    )


@dataclass(frozen=True)
class InboxState:
    unread_count: int
    seq: int
    version: int


def initials(name: str) -> str:
    """One or two letters for an avatar: the first letters of the first and last words of a name
    ("Ada Lovelace" → "AL", "Cher" → "C"), "?" when it has none."""
    words = [word for word in name.split() if word[0].isalnum()]
    if not words:
        return "?"
    letters = words[0][0] + (words[-1][0] if len(words) > 1 else "")
    return letters.upper()


def actor_json(n: Notification | NotificationData) -> ActorJson | None:
    """Who caused it, when that was someone other than its recipient."""
    if n.actor_id is None or n.actor_id == n.user_id:
        return None
    name = n.actor_name if isinstance(n, NotificationData) else (n.actor.name if n.actor else None)
    if name is None:
        return None
    return {"id": n.actor_id, "name": name, "initials": initials(name)}


def notification_json(n: Notification | NotificationData, created_iso: str | None = None) -> NotificationJson:
    return {
        "id": n.id,
        "seq": n.seq,
        "type": n.type,
        "title": n.title,
        "body": n.body,
        "url": n.url,
        "data": n.data,
        "created_at": created_iso or n.created_at.isoformat(),
        "seen_at": n.seen_at.isoformat() if n.seen_at else None,
        "read_at": n.read_at.isoformat() if n.read_at else None,
        "obsolete": n.obsolete_at is not None,
        "expires_at": n.expires_at.isoformat() if n.expires_at else None,
        "expired": n.expires_at is not None and n.expires_at <= utcnow(),
        "actor": actor_json(n),
        "archived_at": n.archived_at.isoformat() if n.archived_at else None,
    }


def _chunks(items: Sequence[Any], size: int = IN_CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _unexpired(now: datetime | BindParameter[datetime]) -> Any:
    return or_(Notification.expires_at.is_(None), Notification.expires_at > now)


class NotificationService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- creating -------------------------------------------------------------------------

    async def notify(self, item: NewNotification) -> NotificationData | None:
        """Adds one notification in the caller's transaction; None if its dedupe_key was used."""
        created = await self.notify_many([item])
        return created[0] if created else None

    async def notify_many(self, items: Sequence[NewNotification]) -> list[NotificationData]:
        """Adds notifications in the caller's transaction, skipping dedupe_keys already used
        for that user. The doorbell rings for each after the caller commits."""
        items = [_fitted(item) for item in items]
        items, names = await self._for_existing_accounts(items)
        if not items:
            return []
        user_ids = sorted({item.user_id for item in items})
        counters = await self._lock_counters(user_ids)
        taken = await self._taken_dedupe_keys(items)
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for item in items:
            key = item.dedupe_key or f"unique:{uuid.uuid4().hex}"
            if (item.user_id, key) in taken:
                continue
            taken.add((item.user_id, key))
            counter = counters[item.user_id]
            counter["last_seq"] += 1
            rows.append(
                {
                    "user_id": item.user_id,
                    "seq": counter["last_seq"],
                    "type": item.type,
                    "title": item.title,
                    "body": item.body,
                    "url": item.url,
                    "data": item.data,
                    "actor_id": item.actor_id,
                    "subject_kind": item.subject_kind,
                    "subject_id": item.subject_id,
                    "dedupe_key": key,
                    "created_at": now,
                    "expires_at": item.expires_at,
                    "report_id": item.report_id,
                }
            )
        if not rows:
            return []
        # Core executemany with RETURNING, batched into multi-row INSERTs. Asking for the rows back
        # in parameter order would make SQLite insert one row per statement, so ids are matched
        # by (user_id, seq), which is unique.
        table = NOTIFICATIONS
        inserted = await self.session.execute(insert(table).returning(table.c.id, table.c.user_id, table.c.seq), rows)
        ids = {(user_id, seq): notification_id for notification_id, user_id, seq in inserted}
        created = [
            NotificationData(
                id=ids[(row["user_id"], row["seq"])],
                actor_name=names.get(row["actor_id"]) if row["actor_id"] else None,
                **{k: row[k] for k in NotificationData.ROW_FIELDS},
            )
            for row in rows
        ]
        await plan_deliveries(self.session, rows, ids, now)  # push and email, in this transaction
        touched = sorted({row["user_id"] for row in rows})
        for user_id in touched:
            counters[user_id]["version"] += 1
        await self._write_counters({uid: counters[uid] for uid in touched})
        counts = await self._unread_counts(touched, now)
        created_iso = now.isoformat()
        queue_after_commit(
            self.session.sync_session,
            [
                NewMessage(
                    user=n.user_id,
                    seq=n.seq,
                    notification=notification_json(n, created_iso),
                    unread_count=counts[n.user_id],
                    version=counters[n.user_id]["version"],
                )
                for n in created
            ],
        )
        return created

    # ---- read state -----------------------------------------------------------------------

    async def mark_read(self, user_id: int, notification_id: int) -> tuple[Notification, InboxState]:
        return await self._set(user_id, notification_id, "read_at", True)

    async def mark_unread(self, user_id: int, notification_id: int) -> tuple[Notification, InboxState]:
        return await self._set(user_id, notification_id, "read_at", False)

    async def archive(self, user_id: int, notification_id: int) -> tuple[Notification, InboxState]:
        return await self._set(user_id, notification_id, "archived_at", True)

    async def unarchive(self, user_id: int, notification_id: int) -> tuple[Notification, InboxState]:
        return await self._set(user_id, notification_id, "archived_at", False)

    async def _set(
        self, user_id: int, notification_id: int, column: Literal["read_at", "archived_at"], on: bool
    ) -> tuple[Notification, InboxState]:
        """Sets (now) or clears one item's read or archived time; doing it twice changes nothing."""
        counter = (await self._lock_counters([user_id]))[user_id]
        notification = await self.get(user_id, notification_id)
        changed = (getattr(notification, column) is None) == on
        if changed:
            setattr(notification, column, utcnow() if on else None)
            if column == "read_at" and on:
                count_after_commit(self.session, metrics.NOTIFICATIONS_READ, 1)
        ids = [notification.id] if changed else []
        if column == "read_at":
            return notification, await self._finish_change(user_id, counter, ids, read=on)
        return notification, await self._finish_change(user_id, counter, ids, archived=on)

    async def mark_all_read(self, user_id: int, up_to_seq: int | None = None) -> tuple[list[int], InboxState]:
        """Marks everything up to the seq the user saw; anything newer stays unread. Archived items
        are out of sight, so they stay as they are."""
        counter, limit, ids = await self._set_up_to(
            user_id, up_to_seq, Notification.read_at.is_(None), read_at=utcnow()
        )
        count_after_commit(self.session, metrics.NOTIFICATIONS_READ, len(ids))
        state = await self._finish_change(user_id, counter, ids, True, up_to_seq=limit)
        return ids, state

    async def archive_read(self, user_id: int, up_to_seq: int | None = None) -> tuple[list[int], InboxState]:
        """Archives the read items up to the seq the user saw ("archive all read"); an item read
        or arriving after that stays. The unread count does not change, but every view drops them."""
        condition = Notification.read_at.is_not(None)
        counter, _, ids = await self._set_up_to(user_id, up_to_seq, condition, archived_at=utcnow())
        return ids, await self._finish_change(user_id, counter, ids, archived=True)

    async def _set_up_to(
        self, user_id: int, up_to_seq: int | None, condition: Any, **values: Any
    ) -> tuple[dict[str, int], int, list[int]]:
        """Under the user's counter lock, sets `values` on their unarchived items meeting
        `condition` up to the seq the user saw (all when None). Returns the counter, that seq
        and the ids changed."""
        counter, limit = await self._lock_up_to(user_id, up_to_seq)
        result = await self.session.execute(
            update(Notification)
            .where(
                Notification.user_id == user_id,
                Notification.archived_at.is_(None),
                condition,
                Notification.seq <= limit,
            )
            .values(**values)
            .returning(Notification.id)
            .execution_options(synchronize_session=False)
        )
        return counter, limit, sorted(result.scalars())

    async def _lock_up_to(self, user_id: int, up_to_seq: int | None) -> tuple[dict[str, int], int]:
        """The user's locked counter and the last seq a change "up to what the user saw" may take."""
        if up_to_seq is not None and not is_int_in(up_to_seq, 0, MAX_INT32):
            raise ValidationFailed({"up_to_seq": f"Use a seq from 0 to {MAX_INT32}."})
        counter = (await self._lock_counters([user_id]))[user_id]
        return counter, counter["last_seq"] if up_to_seq is None else min(up_to_seq, counter["last_seq"])

    async def _finish_change(
        self,
        user_id: int,
        counter: dict[str, int],
        ids: list[int],
        read: bool | None = None,
        up_to_seq: int | None = None,
        archived: bool | None = None,
    ) -> InboxState:
        """After a change of read state (`read`) or of archiving (`archived`) of `ids`: a new
        version, and the message that tells every tab, rung after commit. No ids: nothing changed."""
        if ids:
            counter["version"] += 1
            await self.session.execute(
                update(NotificationCounter)
                .where(NotificationCounter.user_id == user_id)
                .values(version=counter["version"])
            )
        count = (await self._unread_counts([user_id], utcnow()))[user_id]
        state = InboxState(unread_count=count, seq=counter["last_seq"], version=counter["version"])
        if not ids:
            return state
        count, seq, version = state.unread_count, state.seq, state.version
        message: Message
        if archived is not None:
            message = ArchiveMessage(user_id, ids, archived, unread_count=count, seq=seq, version=version)
        else:
            message = ReadMessage(user_id, ids, bool(read), count, seq, version, up_to_seq=up_to_seq)
        queue_after_commit(self.session.sync_session, [message])
        return state

    async def unread_about(
        self, subject_kind: str, subject_id: int, types: Sequence[str], user_ids: Sequence[int] | None = None
    ) -> list[Notification]:
        """Unread notifications of these types about one subject (e.g. an event's pending updates)."""
        return await self.about(subject_kind, subject_id, types, user_ids, unread_only=True)

    async def about(
        self,
        subject_kind: str,
        subject_id: int,
        types: Sequence[str],
        user_ids: Sequence[int] | None = None,
        unread_only: bool = False,
    ) -> list[Notification]:
        """Notifications of these types about one subject, optionally for some users only."""
        statement = select(Notification).where(
            Notification.subject_kind == subject_kind,
            Notification.subject_id == subject_id,
            Notification.type.in_(types),
        )
        if unread_only:
            statement = statement.where(Notification.read_at.is_(None))
        if user_ids is None:
            return list(await self.session.scalars(statement))
        found: list[Notification] = []
        for chunk in _chunks(sorted(user_ids)):
            found.extend(await self.session.scalars(statement.where(among(self.session, Notification.user_id, chunk))))
        return found

    async def lock_inboxes(self, user_ids: Sequence[int]) -> None:
        """Takes these users' counter locks at once, in ascending order, for a caller that then
        changes their inboxes in several steps (e.g. mark_obsolete, then notify_many): two such
        callers with overlapping users cannot deadlock."""
        if user_ids:
            await self._lock_counters(sorted(set(user_ids)))

    async def mark_obsolete(self, notifications: Sequence[Notification]) -> None:
        """In the caller's transaction: these items became wrong (their event was cancelled,
        or a newer update replaces them). They leave the unread count and every tab is told."""
        if not notifications:
            return
        by_user: dict[int, list[int]] = {}
        for n in notifications:
            by_user.setdefault(n.user_id, []).append(n.id)
        counters = await self._lock_counters(sorted(by_user))
        now = utcnow()
        ids = sorted(n.id for n in notifications)
        for chunk in _chunks(ids):
            await self.session.execute(
                update(Notification)
                .where(among(self.session, Notification.id, chunk), Notification.read_at.is_(None))
                .values(read_at=now, obsolete_at=now)
                .execution_options(synchronize_session=False)
            )
        for user_id in by_user:
            counters[user_id]["version"] += 1
        await self.session.execute(
            update(NotificationCounter),
            [{"user_id": uid, "version": counters[uid]["version"]} for uid in sorted(by_user)],
        )
        counts = await self._unread_counts(sorted(by_user), now)
        queue_after_commit(
            self.session.sync_session,
            [
                ReadMessage(
                    user=uid,
                    ids=sorted(user_ids),
                    read=True,
                    unread_count=counts[uid],
                    seq=counters[uid]["last_seq"],
                    version=counters[uid]["version"],
                )
                for uid, user_ids in by_user.items()
            ],
        )

    async def annotate(self, user_id: int, notification_id: int, **data: Any) -> Notification:
        """Records what became of the thing a notification is about (e.g. an answered invitation).
        Takes the user's counter lock first, like every other change to the inbox (lock order)."""
        await self._lock_counters([user_id])
        notification = await self.get(user_id, notification_id)
        notification.data = {**notification.data, **data}
        await self.session.flush()
        return notification

    async def panel(self, user_id: int, limit: int) -> tuple[list[Notification], InboxState]:
        """The dropdown: the latest items and the state they belong to, as of one moment. The
        counter is read first and only items up to its seq are listed and marked seen, so "mark
        all as read" (which sends that seq back) marks exactly what the dropdown showed, even
        when a notification commits while the dropdown is being built."""
        state = await self.state(user_id)
        items, _ = await self.listing(user_id, limit=limit, cursor=state.seq + 1)
        await self.mark_seen(user_id, up_to_seq=state.seq)
        return items, state

    async def mark_seen(self, user_id: int, up_to_seq: int) -> int:
        """Opening the dropdown marks what it shows seen (not read)."""
        result = await self.session.execute(
            update(Notification)
            .where(Notification.user_id == user_id, Notification.seen_at.is_(None), Notification.seq <= up_to_seq)
            .values(seen_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        seen = int(result.rowcount or 0)  # type: ignore[attr-defined]
        count_after_commit(self.session, metrics.NOTIFICATIONS_SEEN, seen)
        return seen

    async def mark_delivered(self, delivered: Mapping[int, float]) -> int:
        """Notifications first written to a live stream, by id, with when (a Unix time): each
        keeps its first delivery time. The times are kept to a tenth of a second, so the ids of
        one tenth share one UPDATE (per IN_CHUNK ids): a thousand deliveries written within a
        tenth of a second are two statements. Takes no counter lock: delivery is not part of the
        inbox's state (seq, version, unread count), and notification rows come last in the lock
        order. Returns how many rows changed."""
        by_time: dict[float, list[int]] = {}
        for notification_id, at in delivered.items():
            by_time.setdefault(math.floor(at * 10) / 10, []).append(notification_id)
        changed = 0
        for at, ids in sorted(by_time.items()):
            moment = datetime.fromtimestamp(at, UTC)
            for chunk in _chunks(sorted(ids)):
                result = await self.session.execute(
                    update(Notification)
                    .where(among(self.session, Notification.id, chunk), Notification.delivered_at.is_(None))
                    .values(delivered_at=moment)
                    .execution_options(synchronize_session=False)
                )
                changed += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return changed

    # ---- reading --------------------------------------------------------------------------

    async def state(self, user_id: int) -> InboxState:
        """The count and the position, in one statement: every API read and stream opening asks."""
        row = (await self.session.execute(_STATE, {"user_id": user_id, "now": utcnow()})).first()
        if row is None:  # nothing was ever sent to the user
            return InboxState(unread_count=0, seq=0, version=0)
        return InboxState(unread_count=row[2], seq=row[0], version=row[1])

    async def unread_count(self, user_id: int) -> int:
        return (await self._unread_counts([user_id], utcnow()))[user_id]

    async def get(self, user_id: int, notification_id: int) -> Notification:
        """The user's notification (another's is not found), read afresh: a change takes the
        counter lock first and must see the row as it is now, not as this session last saw it."""
        notification = await self.session.get(Notification, notification_id, populate_existing=True)
        if notification is None or notification.user_id != user_id:
            raise NotFound("No such notification.")
        return notification

    async def since(self, user_id: int, after_seq: int, limit: int) -> list[NotificationData]:
        """Replay: the user's notifications after a seq, oldest first."""
        rows = await self.session.execute(_SINCE, {"user_id": user_id, "after_seq": after_seq, "limit": limit})
        return [NotificationData(**row._mapping) for row in rows]

    async def listing(
        self, user_id: int, status: str = "all", type_: str | None = None, limit: int = 20, cursor: int | None = None
    ) -> tuple[list[Notification], int | None]:
        """Newest first; `cursor` is the seq to continue below. Returns the page and the next cursor."""
        errors = {}
        if status not in STATUSES:
            errors["status"] = "Use unread, read, all or archived."
        if type_ and type_ not in NOTIFICATION_TYPES:
            errors["type"] = "Unknown notification type."
        if not 1 <= limit <= MAX_PAGE:
            errors["limit"] = f"Use a limit from 1 to {MAX_PAGE}."
        if cursor is not None and not is_int_in(cursor, 0, MAX_INT32):
            errors["cursor"] = "Invalid cursor."
        if errors:
            raise ValidationFailed(errors)
        statement = select(Notification).where(Notification.user_id == user_id)
        if status == "archived":
            statement = statement.where(Notification.archived_at.is_not(None))
        else:
            statement = statement.where(Notification.archived_at.is_(None))
        if status == "unread":
            statement = statement.where(Notification.read_at.is_(None), _unexpired(utcnow()))
        elif status == "read":
            statement = statement.where(Notification.read_at.is_not(None))
        if type_:
            statement = statement.where(Notification.type == type_)
        if cursor is not None:
            statement = statement.where(Notification.seq < cursor)
        page = list(await self.session.scalars(statement.order_by(Notification.seq.desc()).limit(limit + 1)))
        next_cursor = page[limit - 1].seq if len(page) > limit else None
        return page[:limit], next_cursor

    # ---- broadcasting (public names used by jobs and the realtime layer) -----------------

    async def announce_expired(self, now: datetime) -> list[int]:
        """Tells the open tabs of every user whose unread items expired since the last call (up to
        `now`) their lower count, under a new version so tabs take it. Returns those users.

        An expiry changes no row, so nothing else would tell the bell; the watermark row makes each
        expiry told once. It is locked before the counters (nothing else takes it)."""
        watermark = await self.session.scalar(select(ExpiryWatermark).with_for_update())
        if watermark is None:
            watermark = ExpiryWatermark(id=1, told_up_to=now - EXPIRY_LOOKBACK)
            self.session.add(watermark)
        since, watermark.told_up_to = watermark.told_up_to, max(now, watermark.told_up_to)
        user_ids = sorted(
            await self.session.scalars(
                select(Notification.user_id)
                .where(
                    Notification.expires_at > since,
                    Notification.expires_at <= now,
                    Notification.read_at.is_(None),
                    Notification.archived_at.is_(None),
                )
                .distinct()
            )
        )
        if not user_ids:
            return []
        counters = await self._lock_counters(user_ids)
        await self.session.execute(
            update(COUNTERS).where(COUNTERS.c.user_id == bindparam("uid")).values(version=COUNTERS.c.version + 1),
            [{"uid": uid} for uid in user_ids],
        )
        counts = await self._unread_counts(user_ids, now)
        queue_after_commit(
            self.session.sync_session,
            [
                CountMessage(
                    user=uid,
                    unread_count=counts[uid],
                    seq=counters[uid]["last_seq"],
                    version=counters[uid]["version"] + 1,
                )
                for uid in user_ids
            ],
        )
        return user_ids

    async def broadcast_to_user(self, user_id: int, notification: Notification | NotificationData) -> None:
        """Rings the doorbell for a committed notification, e.g. to re-announce it."""
        state = await self.state(user_id)
        _ring(
            NewMessage(
                user=user_id,
                seq=notification.seq,
                notification=notification_json(notification),
                unread_count=state.unread_count,
                version=state.version,
            )
        )

    async def broadcast_notification_count(self, user_id: int) -> InboxState:
        state = await self.state(user_id)
        _ring(CountMessage(user=user_id, unread_count=state.unread_count, seq=state.seq, version=state.version))
        return state

    # ---- internals ------------------------------------------------------------------------

    async def _lock_counters(self, user_ids: list[int]) -> dict[int, dict[str, int]]:
        """Locks these users' counter rows in ascending user id and returns them. The rows of users
        who never had a notification are then created and locked, in ascending order too (after
        the locks on the existing ones: two callers then only ever wait for each other in one
        direction)."""
        counters = await self._locked_counters(user_ids)
        missing = [uid for uid in user_ids if uid not in counters]
        if missing:
            # executemany of one cached statement (a multi-VALUES insert would compile anew per size).
            await self.session.execute(
                insert_on_conflict(self.session)(COUNTERS).on_conflict_do_nothing(index_elements=["user_id"]),
                [{"user_id": uid, "last_seq": 0, "version": 0} for uid in missing],
            )
            counters.update(await self._locked_counters(missing))
        return counters

    async def _write_counters(self, counters: Mapping[int, Mapping[str, int]]) -> None:
        """Stores new `last_seq` and `version` values. On PostgreSQL one UPDATE joined with the
        values as arrays (a fan-out chunk's thousand UPDATE statements took 20 ms); SQLite runs
        the executemany in its own process, where a statement costs little."""
        if on_postgresql(self.session):
            values = (
                func.unnest(
                    bindparam("uids", list(counters), type_=ARRAY(Integer)),
                    bindparam("lasts", [c["last_seq"] for c in counters.values()], type_=ARRAY(Integer)),
                    bindparam("vers", [c["version"] for c in counters.values()], type_=ARRAY(Integer)),
                )
                .table_valued("user_id", "last_seq", "version")
                .render_derived()
            )
            await self.session.execute(
                update(COUNTERS)
                .where(COUNTERS.c.user_id == values.c.user_id)
                .values(last_seq=values.c.last_seq, version=values.c.version)
            )
            return
        await self.session.execute(
            update(COUNTERS)
            .where(COUNTERS.c.user_id == bindparam("uid"))
            .values(last_seq=bindparam("last"), version=bindparam("ver")),
            [{"uid": uid, "last": c["last_seq"], "ver": c["version"]} for uid, c in counters.items()],
        )

    async def _locked_counters(self, user_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        counters: dict[int, dict[str, int]] = {}
        for chunk in _chunks(user_ids):
            result = await self.session.execute(
                select(NotificationCounter.user_id, NotificationCounter.last_seq, NotificationCounter.version)
                .where(among(self.session, NotificationCounter.user_id, chunk))
                .order_by(NotificationCounter.user_id)
                .with_for_update()
            )
            for user_id, last_seq, version in result:
                counters[user_id] = {"last_seq": last_seq, "version": version}
        return counters

    async def _for_existing_accounts(
        self, items: Sequence[NewNotification]
    ) -> tuple[list[NewNotification], dict[int, str]]:
        """Drops items for accounts deleted since the job was queued, and forgets a deleted actor:
        a job must not fail (and retry for hours) because someone left. Also answers the actors'
        names, for the messages the streams render."""
        actors = {item.actor_id for item in items if item.actor_id}
        people = sorted({item.user_id for item in items} | actors)
        existing: set[int] = set()
        names: dict[int, str] = {}
        for chunk in _chunks(people):
            for user_id, name in await self.session.execute(
                select(User.id, User.name).where(among(self.session, User.id, chunk))
            ):
                existing.add(user_id)
                if user_id in actors:
                    names[user_id] = name
        kept = [
            item if item.actor_id is None or item.actor_id in existing else replace(item, actor_id=None)
            for item in items
            if item.user_id in existing
        ]
        return kept, names

    async def _taken_dedupe_keys(self, items: Sequence[NewNotification]) -> set[tuple[int, str]]:
        wanted = sorted({(item.user_id, item.dedupe_key) for item in items if item.dedupe_key})
        taken: set[tuple[int, str]] = set()
        for chunk in _chunks(wanted, IN_CHUNK // 2):
            # Both columns filtered, so the (user_id, dedupe_key) unique index answers it.
            result = await self.session.execute(
                select(Notification.user_id, Notification.dedupe_key).where(
                    among(self.session, Notification.user_id, {uid for uid, _ in chunk}),
                    among(self.session, Notification.dedupe_key, {key for _, key in chunk}),
                )
            )
            wanted_here = set(chunk)
            taken.update((uid, key) for uid, key in result if (uid, key) in wanted_here)
        return taken

    async def _unread_counts(self, user_ids: list[int], now: datetime) -> dict[int, int]:
        """Unread counts, bounded at UNREAD_COUNT_LIMIT: the bell shows "99+" above 99, so a count
        stops at 100 (a LIMIT per user) instead of walking every unread row of a full inbox."""
        counts = dict.fromkeys(user_ids, 0)
        for chunk in _chunks(user_ids):
            result = await self.session.execute(
                select(COUNTERS.c.user_id, _bounded_unread_count(now)).where(
                    among(self.session, COUNTERS.c.user_id, chunk)
                )
            )
            counts.update({uid: count for uid, count in result})
        return counts


def _bounded_unread_count(now: datetime | BindParameter[datetime]) -> ScalarSelect[int]:
    """The unread count of the counter row's user, stopping at UNREAD_COUNT_LIMIT (a LIMIT, so a
    full inbox is not walked row by row)."""
    first_unread = (
        select(Notification.id)
        .where(
            Notification.user_id == COUNTERS.c.user_id,
            Notification.read_at.is_(None),
            Notification.archived_at.is_(None),
            _unexpired(now),
        )
        .limit(UNREAD_COUNT_LIMIT)
        .correlate(COUNTERS)
        .subquery()
    )
    return select(func.count()).select_from(first_unread).scalar_subquery()


# The statements of every API read, stream opening and replay, built once with bound parameters:
# SQLAlchemy computes the cache key of each new statement object it runs, a third of the CPU of
# a one-statement read (bench/run.py); a statement object it has run before has its key already.
_STATE = select(COUNTERS.c.last_seq, COUNTERS.c.version, _bounded_unread_count(bindparam("now"))).where(
    COUNTERS.c.user_id == bindparam("user_id")
)
# Plain rows with the actor's name joined (the ORM loads actors in a second query): in a
# reconnect storm the replay runs once per opening.
_SINCE = (
    select(
        Notification.id,
        Notification.user_id,
        Notification.seq,
        Notification.type,
        Notification.title,
        Notification.body,
        Notification.url,
        Notification.data,
        Notification.created_at,
        Notification.expires_at,
        Notification.actor_id,
        User.name.label("actor_name"),
        Notification.seen_at,
        Notification.read_at,
        Notification.obsolete_at,
        Notification.archived_at,
    )
    .outerjoin(User, User.id == Notification.actor_id)
    .where(Notification.user_id == bindparam("user_id"), Notification.seq > bindparam("after_seq"))
    .order_by(Notification.seq)
    .limit(bindparam("limit", type_=Integer))
)


def count_after_commit(session: AsyncSession, counter: Counter, amount: int) -> None:
    """Counts rows a transaction changed once it commits: a rolled-back (or retried) request
    counts nothing."""
    if amount:
        pending = session.sync_session.info.setdefault("count_after_commit", {})
        pending[counter] = pending.get(counter, 0) + amount


@event.listens_for(Session, "after_commit")
def _count_after_commit(session: Session) -> None:
    for counter, amount in session.info.pop("count_after_commit", {}).items():
        counter.inc(amount)


@event.listens_for(Session, "after_rollback")
def _forget_counts_after_rollback(session: Session) -> None:
    session.info.pop("count_after_commit", None)


def _ring(message: Message) -> None:
    doorbell = current_doorbell()
    if doorbell is not None:
        doorbell.ring([to_wire(message)])


def shorten(text: str, limit: int) -> str:
    """Text cut to `limit` characters with an ellipsis, at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 3 // 4:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _fitted(item: NewNotification) -> NewNotification:
    """Titles and bodies are built from what users wrote (a 200-character event title inside
    "Booking confirmed: …", a long group name): they are shortened to fit their columns, never
    refused, or the job telling someone would fail on every retry and tell them nothing. What
    is still wrong is a programming error, refused for good (the job is dead-lettered)."""
    errors = {}
    if item.type not in NOTIFICATION_TYPES:
        errors["type"] = f"Unknown notification type {item.type!r}."
    if not item.title.strip():
        errors["title"] = "A notification needs a title."
    if item.dedupe_key is not None and not 0 < len(item.dedupe_key) <= 200:
        errors["dedupe_key"] = "A dedupe key has 1 to 200 characters."
    if errors:
        raise ValidationFailed(errors)
    if len(item.title) <= TITLE_MAX and len(item.body) <= BODY_MAX:
        return item
    return replace(item, title=shorten(item.title, TITLE_MAX), body=shorten(item.body, BODY_MAX))
