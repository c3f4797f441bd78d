from __future__ import annotations

from typing import TypedDict

import msgspec

from webapp.auth.schemas import UserRef
from webapp.groups.models import Group, Invitation
from webapp.openapi import Timestamp
from webapp.validation import Text


class GroupCreate(msgspec.Struct):
    name: Text


class InvitationCreate(msgspec.Struct):
    email: Text


class GroupRef(TypedDict):
    id: int
    name: str


class GroupJson(TypedDict):
    id: int
    name: str
    owner_id: int
    members: list[UserRef]


class Invitee(TypedDict):
    """Only the address typed: a name would tell the inviter whether it has an account."""

    email: str


class InvitationJson(TypedDict):
    id: int
    group: GroupRef
    inviter: UserRef
    invitee: Invitee
    status: str
    created_at: Timestamp


def group_json(group: Group) -> GroupJson:
    return {
        "id": group.id,
        "name": group.name,
        "owner_id": group.owner_id,
        "members": [{"id": m.user_id, "name": m.user.name} for m in group.members],
    }


def invitation_json(invitation: Invitation) -> InvitationJson:
    return {
        "id": invitation.id,
        "group": {"id": invitation.group.id, "name": invitation.group.name},
        "inviter": {"id": invitation.inviter.id, "name": invitation.inviter.name},
        # Only the address: the invitee's name would tell the inviter that it has an account.
        "invitee": {"email": invitation.address},
        "status": invitation.status,
        "created_at": invitation.created_at.isoformat(),
    }
