"""No deadlocks: every change follows one lock order (event → bookings → notification counters in
ascending user id → notification rows), run for a while in a loop against a real server.

On PostgreSQL, where transactions truly interleave, the loop runs 20 s (DEADLOCK_LOOP_SECONDS for a
longer soak by hand);
SQLite runs one writer at a time, so a short loop there only proves the answers are right.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from tests.api import bearer, register
from tests.integration.pages import csrf_token, register_in_browser
from tests.services import race_loop_seconds
from webapp.db import create_sessionmaker
from webapp.groups.models import GroupMember, Invitation
from webapp.notifications.services import NewNotification, NotificationService


async def test_answering_an_invitation_while_another_tab_marks_it_read_never_deadlocks(
    app, in_process_server, engine, database_url
):
    sessions = create_sessionmaker(engine)
    statuses: Counter[int] = Counter()
    rounds = 0
    async with httpx.AsyncClient(base_url=in_process_server, timeout=30) as owner_http:
        _, owner_token = await register(owner_http)
        group = (await owner_http.post("/api/v1/groups", json={"name": "Loop"}, headers=bearer(owner_token))).json()
        async with (
            httpx.AsyncClient(base_url=in_process_server, timeout=30) as tab_one,
            httpx.AsyncClient(base_url=in_process_server, timeout=30) as tab_two,
        ):
            await register_in_browser(tab_one, "looping-invitee@example.com")
            tab_two.cookies = tab_one.cookies  # one browser, two tabs
            me = (await tab_one.get("/api/v1/me")).json()
            csrf = await csrf_token(tab_one, "/")
            deadline = time.monotonic() + race_loop_seconds(database_url)
            while time.monotonic() < deadline:
                rounds += 1
                async with sessions() as db:
                    invitation = Invitation(group_id=group["id"], inviter_id=group["owner_id"], invitee_id=me["id"])
                    db.add(invitation)
                    await db.flush()
                    notification = await NotificationService(db).notify(
                        NewNotification(
                            user_id=me["id"],
                            type="group_invitation",
                            title="Join Loop",
                            data={"invitation_id": invitation.id, "invitation_status": "pending"},
                            subject_kind="invitation",
                            subject_id=invitation.id,
                        )
                    )
                    await db.commit()
                assert notification is not None
                verb = "accept" if rounds % 2 else "decline"
                answered, marked = await asyncio.gather(
                    tab_one.post(
                        f"/invitations/{invitation.id}/{verb}",
                        data={"notification_id": str(notification.id), "_csrf_token": csrf},
                        headers={"HX-Request": "true"},
                    ),
                    tab_two.post(
                        f"/notifications/{notification.id}/read",
                        headers={"x-csrftoken": csrf, "HX-Request": "true"},
                    ),
                )
                statuses.update([answered.status_code, marked.status_code])
                if verb == "accept":  # leave the group again so the next invitation can be accepted
                    async with sessions() as db:
                        member = await db.get(GroupMember, (group["id"], me["id"]))
                        if member is not None:
                            await db.delete(member)
                        await db.commit()
    print(f"invitation answered while marked read: {rounds} rounds, statuses {dict(statuses)}")
    assert rounds > 0
    assert set(statuses) == {200}, statuses
