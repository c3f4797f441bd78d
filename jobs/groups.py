"""Group invitations, answerable from the notification itself; the owner hears every answer."""

from __future__ import annotations

import dramatiq

from jobs import runtime
from jobs.broker import broker as _broker  # noqa: F401 - configures Dramatiq before the actors below
from webapp.auth.models import User
from webapp.groups.models import Invitation
from webapp.notifications.services import NewNotification, NotificationService


@dramatiq.actor(queue_name="notifications")
async def send_group_invitation(invitation_id: int, outbox_id: int | None = None) -> None:
    async with runtime.session(outbox_id) as session:
        invitation = await session.get(Invitation, invitation_id)
        if invitation is None or invitation.status != "pending" or invitation.invitee_id is None:
            return  # answered, withdrawn, or still waiting for its address to sign up
        await NotificationService(session).notify(
            NewNotification(
                user_id=invitation.invitee_id,
                type="group_invitation",
                title=f"{invitation.inviter.name} invited you to “{invitation.group.name}”",
                body="Accept to be included in the group's bookings.",
                url="/groups",
                data={"invitation_id": invitation.id, "group_id": invitation.group_id, "invitation_status": "pending"},
                actor_id=invitation.inviter_id,
                subject_kind="invitation",
                subject_id=invitation.id,
                dedupe_key=f"group_invitation:{invitation.id}",
            )
        )
        await session.commit()


@dramatiq.actor(queue_name="notifications")
async def send_invitation_answered(invitation_id: int, outbox_id: int | None = None) -> None:
    async with runtime.session(outbox_id) as session:
        invitation = await session.get(Invitation, invitation_id)
        if invitation is None or invitation.status not in ("accepted", "declined") or invitation.invitee_id is None:
            return
        invitee = await session.get(User, invitation.invitee_id)
        if invitee is None:
            return
        group = invitation.group
        await NotificationService(session).notify(
            NewNotification(
                user_id=group.owner_id,
                type="invitation_answered",
                title=f"{invitee.name} {invitation.status} your invitation to “{group.name}”",
                body=(
                    f"{len(group.members)} member{'s' if len(group.members) != 1 else ''} now."
                    if invitation.status == "accepted"
                    else "You can invite someone else from the group's page."
                ),
                url=f"/groups/{group.id}",
                data={"invitation_id": invitation.id, "group_id": group.id, "invitation_status": invitation.status},
                actor_id=invitee.id,
                subject_kind="invitation",
                subject_id=invitation.id,
                dedupe_key=f"invitation_answered:{invitation.id}",
            )
        )
        await session.commit()
