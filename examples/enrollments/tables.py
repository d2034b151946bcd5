"""The enrollments service's table: who is enrolled in which course."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import CheckConstraint, Index, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lms_shared.db import Model, SoftDeleteMixin
from lms_shared.models import idempotency_table

__all__ = ["ACTIVE_ENROLLMENT", "IDEMPOTENCY_KEYS", "Base", "EnrollmentRow"]

ACTIVE_ENROLLMENT = "uq_enrollments_active_course_id_user_id"
"""The unique index behind ``already-enrolled``."""

_ACTIVE = text("status = 'active' AND deleted_at IS NULL")


class Base(Model, DeclarativeBase):
    """Enrollments' own registry and metadata (its migrations see only this table)."""


class EnrollmentRow(Base, SoftDeleteMixin):
    """An enrollment: active, then maybe withdrawn; dropped ones are soft-deleted.

    A student has at most one active enrollment per course (a partial unique
    index); withdrawn and dropped ones do not count, so they can enroll again.
    """

    __tablename__ = "enrollments"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'withdrawn')", name="status"),
        Index(
            ACTIVE_ENROLLMENT,
            "course_id",
            "user_id",
            unique=True,
            sqlite_where=_ACTIVE,
            postgresql_where=_ACTIVE,
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    course_id: Mapped[UUID] = mapped_column(index=True)
    user_id: Mapped[UUID] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    enrolled_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None] = mapped_column(default=None)


IDEMPOTENCY_KEYS = idempotency_table(Base.metadata)
"""``Idempotency-Key`` records of ``POST /v1/enrollments`` (``lms_idempotency_keys``)."""
