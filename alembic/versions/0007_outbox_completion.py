"""outbox: a row is finished when its job has run (completed_at), or gave up (failed_at)

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import webapp.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("completed_at IS NULL AND failed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("completed_at", webapp.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("failed_at", webapp.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_index("ix_outbox_messages_pending")
    # Rows already handed over before this revision are taken as done: their jobs ran long ago.
    op.execute("UPDATE outbox_messages SET completed_at = enqueued_at WHERE enqueued_at IS NOT NULL")
    op.create_index(
        "ix_outbox_messages_pending",
        "outbox_messages",
        ["enqueued_at", "created_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index("ix_outbox_messages_completed_at", "outbox_messages", ["completed_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_messages_completed_at", table_name="outbox_messages")
    op.drop_index("ix_outbox_messages_pending", table_name="outbox_messages")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_column("failed_at")
        batch_op.drop_column("completed_at")
        batch_op.create_index("ix_outbox_messages_pending", ["enqueued_at", "created_at"], unique=False)
