"""archive: notifications a user put away (out of the dropdown and the counts, kept as they were)

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import webapp.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ARCHIVED = sa.text("archived_at IS NOT NULL")
NOT_ARCHIVED = sa.text("archived_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archived_at", webapp.db.UTCDateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_notifications_user_inbox",
        "notifications",
        ["user_id", "seq"],
        postgresql_where=NOT_ARCHIVED,
        sqlite_where=NOT_ARCHIVED,
    )
    op.create_index(
        "ix_notifications_user_archived",
        "notifications",
        ["user_id", "seq"],
        postgresql_where=ARCHIVED,
        sqlite_where=ARCHIVED,
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_user_archived", table_name="notifications")
    op.drop_index("ix_notifications_user_inbox", table_name="notifications")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
