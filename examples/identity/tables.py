"""The identity service's tables: organizations and their users."""

from __future__ import annotations

from uuid import UUID, uuid4

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lms_shared.auth import API_KEY_METADATA
from lms_shared.db import Model, TimestampMixin

__all__ = ["API_KEYS", "Base", "OrganizationRow", "UserRow"]


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
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    """argon2id (PHC string); ``None`` for users made before passwords existed."""
    phone_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    """The phone number, AES-256-GCM under ``LMS_ENCRYPTION_KEYS``, bound to this row."""


API_KEYS = API_KEY_METADATA.tables["lms_api_keys"].to_metadata(Base.metadata)
"""The library's API key table, owned by identity's migrations (``create_table=False``)."""
