"""Groups and invitations. Only existing accounts can be invited; only the invitee can answer."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import User
from webapp.auth.services import normalize_email
from webapp.db import utcnow
from webapp.errors import Conflict, NotFound, ValidationFailed
from webapp.groups.models import Group, GroupMember, Invitation
from webapp.outbox.services import enqueue_after_commit


class GroupService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, owner: User, name: str) -> Group:
        name = name.strip()
        if not name:
            raise ValidationFailed({"name": "Enter a group name."})
        if len(name) > 100:
            raise ValidationFailed({"name": "Use at most 100 characters."})
        group = Group(name=name, owner_id=owner.id, members=[GroupMember(user_id=owner.id)])
        self.session.add(group)
        await self.session.flush()
        return await self.get_for_member(owner, group.id)

    async def get_for_member(self, user: User, group_id: int) -> Group:
        group = await self.session.get(Group, group_id, populate_existing=True)
        if group is None or user.id not in {m.user_id for m in group.members}:
            raise NotFound("No such group.")
        return group

    async def invite(self, inviter: User, group_id: int, email: str) -> Invitation:
        group = await self.get_for_member(inviter, group_id)
        if group.owner_id != inviter.id:
            raise NotFound("No such group.")
        invitee = await self.session.scalar(select(User).where(User.email == normalize_email(email)))
        if invitee is None:
            raise ValidationFailed({"email": "No Tidings account uses this email."})
        if invitee.id in {m.user_id for m in group.members}:
            raise Conflict(f"{invitee.name} is already in this group.", code="already_member")
        pending = await self.session.scalar(
            select(Invitation).where(
                Invitation.group_id == group.id, Invitation.invitee_id == invitee.id, Invitation.status == "pending"
            )
        )
        if pending is not None:
            raise Conflict(f"{invitee.name} already has a pending invitation.", code="already_invited")
        invitation = Invitation(group_id=group.id, inviter_id=inviter.id, invitee_id=invitee.id)
        self.session.add(invitation)
        await self.session.flush()
        enqueue_after_commit(self.session, "send_group_invitation", invitation_id=invitation.id)
        return await self._get(invitation.id)

    async def accept(self, invitee: User, invitation_id: int) -> Invitation:
        invitation = await self._answerable(invitee, invitation_id)
        invitation.status = "accepted"
        invitation.responded_at = utcnow()
        self.session.add(GroupMember(group_id=invitation.group_id, user_id=invitee.id))
        await self.session.flush()
        return await self._get(invitation.id)

    async def decline(self, invitee: User, invitation_id: int) -> Invitation:
        invitation = await self._answerable(invitee, invitation_id)
        invitation.status = "declined"
        invitation.responded_at = utcnow()
        await self.session.flush()
        return invitation

    async def _answerable(self, invitee: User, invitation_id: int) -> Invitation:
        invitation = await self.session.get(Invitation, invitation_id)
        if invitation is None or invitation.invitee_id != invitee.id:
            raise NotFound("No such invitation.")
        if invitation.status != "pending":
            raise Conflict(f"This invitation was already {invitation.status}.", code="invitation_answered")
        return invitation

    async def _get(self, invitation_id: int) -> Invitation:
        # Reload with its relationships: the group's member list has just changed.
        statement = select(Invitation).where(Invitation.id == invitation_id).execution_options(populate_existing=True)
        invitation = await self.session.scalar(statement)
        if invitation is None:
            raise NotFound("No such invitation.")
        return invitation

    async def list_for_member(self, user: User) -> list[Group]:
        statement = (
            select(Group)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user.id)
            .order_by(Group.name)
        )
        return list(await self.session.scalars(statement))

    async def pending_invitations(self, user: User) -> list[Invitation]:
        statement = (
            select(Invitation)
            .where(Invitation.invitee_id == user.id, Invitation.status == "pending")
            .order_by(Invitation.created_at.desc())
        )
        return list(await self.session.scalars(statement))

    async def sent_invitations(self, group: Group) -> list[Invitation]:
        statement = select(Invitation).where(Invitation.group_id == group.id).order_by(Invitation.created_at.desc())
        return list(await self.session.scalars(statement))
