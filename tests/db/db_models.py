"""The models the database tests use: one plain, tenant-owned ones, a soft-deletable one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from lms_shared.db import Model, SoftDeleteMixin, TenantMixin, TimestampMixin


class Base(Model, DeclarativeBase):
    """The test suite's own registry and metadata."""


class Item(Base):
    """A plain row: no tenant, no soft delete."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    rank: Mapped[int] = mapped_column(default=0)
    score: Mapped[int | None] = mapped_column(default=None)
    when: Mapped[datetime | None] = mapped_column(default=None)


class Course(Base, TenantMixin, SoftDeleteMixin, TimestampMixin):
    """A tenant-owned, soft-deletable, timestamped row."""

    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
    seats: Mapped[int] = mapped_column(default=10)
    lessons: Mapped[list[Lesson]] = relationship(back_populates="course", lazy="raise")


class Lesson(Base, TenantMixin):
    """A tenant-owned child of a course."""

    __tablename__ = "lessons"

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    title: Mapped[str] = mapped_column(String(200))
    course: Mapped[Course] = relationship(back_populates="lessons", lazy="raise")
