"""how far the scheduler has told open tabs of expired items

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import webapp.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_expiry_watermark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("told_up_to", webapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_expiry_watermark")),
    )


def downgrade() -> None:
    op.drop_table("notification_expiry_watermark")
