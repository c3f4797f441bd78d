from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.auth.models import User
from webapp.db import Base, UTCDateTime, utcnow


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[GroupMember]] = relationship(lazy="selectin", cascade="all, delete-orphan")


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")


class Invitation(Base):
    __tablename__ = "group_invitations"
    __table_args__ = (Index("ix_group_invitations_group_invitee", "group_id", "invitee_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    inviter_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # None while the address typed has no account; set when one signs up with it.
    invitee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True, default=None)
    # The address the inviter typed (normalized); null on invitations older than this column.
    invitee_email: Mapped[str | None] = mapped_column(String(254), index=True, default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    group: Mapped[Group] = relationship(lazy="joined")
    inviter: Mapped[User] = relationship(foreign_keys=[inviter_id], lazy="joined")
    invitee: Mapped[User | None] = relationship(foreign_keys=[invitee_id], lazy="joined")

    @property
    def address(self) -> str:
        """The address invited, as the inviter typed it."""
        return self.invitee_email or (self.invitee.email if self.invitee else "")
