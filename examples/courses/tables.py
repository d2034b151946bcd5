"""The courses service's tables: courses, their modules and lessons, in order."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from lms_shared.db import Model, TimestampMixin
from lms_shared.events.sql import event_tables

__all__ = ["EVENT_TABLES", "Base", "CourseRow", "LessonRow", "ModuleRow"]


class Base(Model, DeclarativeBase):
    """Courses' own registry and metadata (its migrations see only these tables)."""


class CourseRow(Base, TimestampMixin):
    """A course; its code is unique within its organization."""

    __tablename__ = "courses"
    __table_args__ = (
        UniqueConstraint("organization_id", "code"),
        CheckConstraint("status IN ('draft', 'published')", name="status"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    organization_id: Mapped[UUID] = mapped_column(index=True)
    instructor_id: Mapped[UUID] = mapped_column(index=True)
    code: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    """Grows by one on every change of the course's own fields: its ``ETag``."""
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    modules: Mapped[list[ModuleRow]] = relationship(
        order_by="ModuleRow.position", lazy="selectin", cascade="all, delete-orphan"
    )


class ModuleRow(Base):
    """A module of a course, at its position in the outline."""

    __tablename__ = "modules"
    __table_args__ = (UniqueConstraint("course_id", "position"),)

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    course_id: Mapped[UUID] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    position: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    lessons: Mapped[list[LessonRow]] = relationship(
        order_by="LessonRow.position", lazy="selectin", cascade="all, delete-orphan"
    )


class LessonRow(Base):
    """A lesson of a module, at its position in the module."""

    __tablename__ = "lessons"
    __table_args__ = (UniqueConstraint("module_id", "position"),)

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    module_id: Mapped[UUID] = mapped_column(ForeignKey("modules.id", ondelete="CASCADE"))
    position: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    duration_minutes: Mapped[int]


EVENT_TABLES = event_tables(Base.metadata)
"""The event outbox, inbox and dead letters (``lms_event_outbox``, ...): see ``service.events``."""
