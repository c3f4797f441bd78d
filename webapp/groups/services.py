"""Groups and invitations. Only existing accounts can be invited; only the invitee can answer."""

from __future__ import annotations

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.caller import Caller
from webapp.auth.models import User
from webapp.auth.services import is_valid_email, normalize_email
from webapp.db import utcnow
from webapp.errors import Conflict, NotFound, ValidationFailed
from webapp.groups.models import Group, GroupMember, Invitation
from webapp.outbox.services import enqueue_after_commit
from webapp.ratelimit import RateLimiter


class GroupService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, owner: Caller, name: str) -> Group:
        name = name.strip()
        if not name:
            raise ValidationFailed({"name": "Enter a group name."})
        if len(name) > 100:
            raise ValidationFailed({"name": "Use at most 100 characters."})
        group = Group(name=name, owner_id=owner.id, members=[GroupMember(user_id=owner.id)])
        self.session.add(group)
        await self.session.flush()
        return await self.get_for_member(owner, group.id)

    async def get_for_member(self, user: Caller, group_id: int) -> Group:
        group = await self.session.get(Group, group_id, populate_existing=True)
        if group is None or user.id not in {m.user_id for m in group.members}:
            raise NotFound("No such group.")
        return group

    async def invite(
        self, inviter: Caller, group_id: int, email: str, *, limiter: RateLimiter | None = None
    ) -> Invitation:
        """`limiter` counts invitations per inviter (requests); only trusted callers (the demo
        data) leave it out. Counted whatever the answer, since each one tells whether an address
        has an account, and before the transaction reads a row."""
        if limiter is not None:
            await limiter.enforce(f"invite:{inviter.id}", "Too many invitations. Try again later.")
        group = await self.get_for_member(inviter, group_id)
        if group.owner_id != inviter.id:
            raise NotFound("No such group.")
        # An address with an account and one without get the same answers (201, or 409 when
        # already invited): the invitation waits for the sign-up (see claim_invitations).
        email = normalize_email(email)
        if not is_valid_email(email):
            raise ValidationFailed({"email": "Enter a valid email address."})
        invitee = await self.session.scalar(select(User).where(User.email == email))
        if invitee is not None and invitee.id in {m.user_id for m in group.members}:
            raise Conflict(f"{invitee.name} is already in this group.", code="already_member")
        addressed = Invitation.invitee_email == email
        if invitee is not None:
            addressed = or_(addressed, Invitation.invitee_id == invitee.id)
        pending = await self.session.scalar(
            select(Invitation.id).where(Invitation.group_id == group.id, Invitation.status == "pending", addressed)
        )
        if pending is not None:
            raise Conflict("This address already has a pending invitation.", code="already_invited")
        invitation = Invitation(
            group_id=group.id, inviter_id=inviter.id, invitee_id=invitee.id if invitee else None, invitee_email=email
        )
        self.session.add(invitation)
        await self.session.flush()
        if invitee is not None:
            enqueue_after_commit(self.session, "send_group_invitation", invitation_id=invitation.id)
        return await self._get(invitation.id)

    async def claim_invitations(self, user: User) -> None:
        """Group invitations sent to this address before it had an account become this user's,
        and are told to them like any other invitation. Called for every sign-up, in its unit
        of work."""
        waiting = await self.session.scalars(
            select(Invitation).where(
                Invitation.invitee_email == user.email, Invitation.invitee_id.is_(None), Invitation.status == "pending"
            )
        )
        for invitation in waiting:
            invitation.invitee_id = user.id
            await self.session.flush()
            enqueue_after_commit(self.session, "send_group_invitation", invitation_id=invitation.id)

    async def accept(self, invitee: Caller, invitation_id: int) -> Invitation:
        invitation = await self._answer(invitee, invitation_id, "accepted")
        self.session.add(GroupMember(group_id=invitation.group_id, user_id=invitee.id))
        await self.session.flush()
        return await self._get(invitation.id)

    async def decline(self, invitee: Caller, invitation_id: int) -> Invitation:
        return await self._answer(invitee, invitation_id, "declined")

    async def get_for_invitee(self, invitee: Caller, invitation_id: int) -> Invitation:
        invitation = await self.session.get(Invitation, invitation_id, populate_existing=True)
        if invitation is None or invitation.invitee_id != invitee.id:
            raise NotFound("No such invitation.")
        return invitation

    async def _answer(self, invitee: Caller, invitation_id: int, status: str) -> Invitation:
        """Answers a pending invitation; the caller commits. Of two answers at once (two tabs), the
        conditional UPDATE lets exactly one through: the other waits on the row, finds it answered
        and is told so (409), instead of adding the member twice or overwriting the first answer."""
        invitation = await self.get_for_invitee(invitee, invitation_id)
        if invitation.status == "pending":
            answered = await self.session.execute(
                update(Invitation)
                .where(Invitation.id == invitation.id, Invitation.status == "pending")
                .values(status=status, responded_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if answered.rowcount == 1:  # type: ignore[attr-defined]
                await self.session.refresh(invitation)
                enqueue_after_commit(self.session, "send_invitation_answered", invitation_id=invitation.id)
                return invitation
            await self.session.refresh(invitation)  # the winner's answer, for the message
        raise Conflict(f"This invitation was already {invitation.status}.", code="invitation_answered")

    async def _get(self, invitation_id: int) -> Invitation:
        # Reload with its relationships: the group's member list has just changed.
        statement = select(Invitation).where(Invitation.id == invitation_id).execution_options(populate_existing=True)
        invitation = await self.session.scalar(statement)
        if invitation is None:
            raise NotFound("No such invitation.")
        return invitation

    async def list_for_member(self, user: Caller) -> list[Group]:
        statement = (
            select(Group)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user.id)
            .order_by(Group.name)
        )
        return list(await self.session.scalars(statement))

    async def pending_invitations(self, user: Caller) -> list[Invitation]:
        statement = (
            select(Invitation)
            .where(Invitation.invitee_id == user.id, Invitation.status == "pending")
            .order_by(Invitation.created_at.desc())
        )
        return list(await self.session.scalars(statement))

    async def sent_invitations(self, group: Group) -> list[Invitation]:
        statement = select(Invitation).where(Invitation.group_id == group.id).order_by(Invitation.created_at.desc())
        return list(await self.session.scalars(statement))
