"""preferences: channel switches per type, muted events, quiet hours

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import webapp.db

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_preferences",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_channel_preferences_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "type", "channel", name=op.f("pk_channel_preferences")),
    )
    op.create_index("ix_channel_preferences_type_user", "channel_preferences", ["type", "user_id"])
    op.create_table(
        "event_mutes",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("created_at", webapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_mutes_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_event_mutes_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "event_id", name=op.f("pk_event_mutes")),
    )
    op.create_index("ix_event_mutes_event_user", "event_mutes", ["event_id", "user_id"])
    op.create_table(
        "quiet_hours",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.CheckConstraint("start_minute >= 0 AND start_minute < 1440", name=op.f("ck_quiet_hours_quiet_start_in_day")),
        sa.CheckConstraint("end_minute >= 0 AND end_minute < 1440", name=op.f("ck_quiet_hours_quiet_end_in_day")),
        sa.CheckConstraint("start_minute <> end_minute", name=op.f("ck_quiet_hours_quiet_window_not_empty")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_quiet_hours_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_quiet_hours")),
    )


def downgrade() -> None:
    op.drop_table("quiet_hours")
    op.drop_index("ix_event_mutes_event_user", table_name="event_mutes")
    op.drop_table("event_mutes")
    op.drop_index("ix_channel_preferences_type_user", table_name="channel_preferences")
    op.drop_table("channel_preferences")
