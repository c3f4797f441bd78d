from __future__ import annotations

from typing import Any

import msgspec

from webapp.groups.models import Group, Invitation
from webapp.validation import Text


class GroupCreate(msgspec.Struct):
    name: Text


class InvitationCreate(msgspec.Struct):
    email: Text


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
        "invitee": {"id": invitation.invitee.id, "name": invitation.invitee.name, "email": invitation.invitee.email},
        "status": invitation.status,
        "created_at": invitation.created_at.isoformat(),
    }
