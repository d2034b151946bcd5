"""The enrollments service's table: who is enrolled in which course."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import CheckConstraint, Index, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lms_shared.db import Model, SoftDeleteMixin, idempotency_table
from lms_shared.events.sql import event_tables

__all__ = [
    "ACTIVE_ENROLLMENT",
    "EVENT_TABLES",
    "IDEMPOTENCY_KEYS",
    "Base",
    "EnrollmentRow",
    "PublishedCourseRow",
]

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


class PublishedCourseRow(Base):
    """A course courses announced as published (``CoursePublished``), as this service heard it."""

    __tablename__ = "published_courses"

    course_id: Mapped[UUID] = mapped_column(primary_key=True)
    organization_id: Mapped[UUID]
    code: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[datetime]
    heard_at: Mapped[datetime]


EVENT_TABLES = event_tables(Base.metadata)
"""The event outbox, inbox and dead letters (``lms_event_inbox``, ...): see ``service.events``."""
