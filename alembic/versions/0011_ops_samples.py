"""ops samples: every process's counters and gauges, every few seconds, for the operations page

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import webapp.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ops_samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("process", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", webapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("taken_at", webapp.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_samples")),
    )
    # The page reads the last hour and the sampler deletes what is older than two: both by time.
    op.create_index("ix_ops_samples_taken_at", "ops_samples", ["taken_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ops_samples_taken_at", table_name="ops_samples")
    op.drop_table("ops_samples")
