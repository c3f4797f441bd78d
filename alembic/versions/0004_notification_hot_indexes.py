"""notifications: indexes for the hot queries (subject lookup, type filter, unseen, expiry)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_subject", ["subject_kind", "subject_id", "type"], unique=False)
        batch_op.create_index("ix_notifications_user_type_seq", ["user_id", "type", "seq"], unique=False)
        batch_op.create_index(
            "ix_notifications_user_unseen",
            ["user_id"],
            unique=False,
            postgresql_where=sa.text("seen_at IS NULL"),
            sqlite_where=sa.text("seen_at IS NULL"),
        )
        batch_op.create_index(
            "ix_notifications_expires_at",
            ["expires_at"],
            unique=False,
            postgresql_where=sa.text("expires_at IS NOT NULL"),
            sqlite_where=sa.text("expires_at IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_expires_at")
        batch_op.drop_index("ix_notifications_user_unseen")
        batch_op.drop_index("ix_notifications_user_type_seq")
        batch_op.drop_index("ix_notifications_subject")
