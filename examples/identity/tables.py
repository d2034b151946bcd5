"""The identity service's tables: organizations and their users."""

from __future__ import annotations

from uuid import UUID, uuid4

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lms_shared.db import Model, TimestampMixin

__all__ = ["Base", "OrganizationRow", "UserRow"]


class Base(Model, DeclarativeBase):
    """Identity's own registry and metadata (its migrations see only these tables)."""


class OrganizationRow(Base, TimestampMixin):
    """An organization; its slug is unique."""

    __tablename__ = "organizations"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)


class UserRow(Base, TimestampMixin):
    """A user of an organization; the email address (lower case) is unique."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'instructor', 'student')", name="role"),)

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    organization_id: Mapped[UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
