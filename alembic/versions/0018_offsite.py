"""off-page deliveries: a row per notification and channel (push, email) that is due, claimed by the scheduler

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import webapp.db

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNCLAIMED = sa.text("claimed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "offsite_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("due_at", webapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", webapp.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("sending_at", webapp.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_at", webapp.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_offsite_deliveries_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offsite_deliveries")),
    )
    op.create_index(
        "ix_offsite_deliveries_due",
        "offsite_deliveries",
        ["due_at"],
        postgresql_where=UNCLAIMED,
        sqlite_where=UNCLAIMED,
    )
    op.create_index(
        "ix_offsite_deliveries_user_unclaimed",
        "offsite_deliveries",
        ["user_id"],
        postgresql_where=UNCLAIMED,
        sqlite_where=UNCLAIMED,
    )
    op.create_index("ix_offsite_deliveries_notification_id", "offsite_deliveries", ["notification_id"])


def downgrade() -> None:
    op.drop_index("ix_offsite_deliveries_notification_id", table_name="offsite_deliveries")
    op.drop_index("ix_offsite_deliveries_user_unclaimed", table_name="offsite_deliveries")
    op.drop_index("ix_offsite_deliveries_due", table_name="offsite_deliveries")
    op.drop_table("offsite_deliveries")
