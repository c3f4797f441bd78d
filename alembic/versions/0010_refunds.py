"""refunds: a cancelled paid booking owes its money back until the gateway has refunded it

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import webapp.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_status", sa.String(length=16), nullable=True))
        batch_op.create_index(
            "ix_bookings_event_refund_pending",
            ["event_id"],
            unique=False,
            postgresql_where=sa.text("refund_status = 'pending'"),
            sqlite_where=sa.text("refund_status = 'pending'"),
        )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_reference", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("refunded_at", webapp.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("refunded_at")
        batch_op.drop_column("refund_reference")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index("ix_bookings_event_refund_pending")
        batch_op.drop_column("refund_status")
