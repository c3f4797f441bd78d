"""delivery reports: a row per fan-out, notifications point at it and record their first live write

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import webapp.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WITH_REPORT = sa.text("report_id IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "delivery_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("sender_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("created_at", webapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_delivery_reports_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["users.id"], name=op.f("fk_delivery_reports_sender_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_reports")),
        sa.UniqueConstraint("key", name=op.f("uq_delivery_reports_key")),
    )
    op.create_index("ix_delivery_reports_event_id_id", "delivery_reports", ["event_id", "id"], unique=False)
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("delivered_at", webapp.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_notifications_report_id_delivery_reports"),
            "delivery_reports",
            ["report_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index(
        "ix_notifications_report_id",
        "notifications",
        ["report_id"],
        postgresql_where=WITH_REPORT,
        sqlite_where=WITH_REPORT,
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_report_id", table_name="notifications")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_notifications_report_id_delivery_reports"), type_="foreignkey")
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("report_id")
    op.drop_index("ix_delivery_reports_event_id_id", table_name="delivery_reports")
    op.drop_table("delivery_reports")
