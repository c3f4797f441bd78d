"""group invitations by address: an invitation may wait for an account that does not exist yet

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("group_invitations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invitee_email", sa.String(length=254), nullable=True))
        batch_op.alter_column("invitee_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f("ix_group_invitations_invitee_email"), ["invitee_email"], unique=False)


def downgrade() -> None:
    # Invitations still waiting for an account have no invitee to keep.
    op.execute("DELETE FROM group_invitations WHERE invitee_id IS NULL")
    with op.batch_alter_table("group_invitations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_invitations_invitee_email"))
        batch_op.alter_column("invitee_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("invitee_email")
