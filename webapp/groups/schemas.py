from __future__ import annotations

from typing import Any

import msgspec

from webapp.groups.models import Group, Invitation


class GroupCreate(msgspec.Struct):
    name: str


class InvitationCreate(msgspec.Struct):
    email: str


def group_json(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "owner_id": group.owner_id,
        "members": [{"id": m.user_id, "name": m.user.name} for m in group.members],
    }


def invitation_json(invitation: Invitation) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "group": {"id": invitation.group.id, "name": invitation.group.name},
        "inviter": {"id": invitation.inviter.id, "name": invitation.inviter.name},
        # Only the address: the invitee's name would tell the inviter that it has an account.
        "invitee": {"email": invitation.address},
        "status": invitation.status,
        "created_at": invitation.created_at.isoformat(),
    }
