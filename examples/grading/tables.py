"""The grading service's tables: submissions, their grades, and the gradebooks' event store."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from lms_shared.db import Model
from lms_shared.events.sourcing import sourcing_tables

__all__ = ["Base", "GradeRow", "SubmissionRow"]


class Base(Model, DeclarativeBase):
    """Grading's own registry and metadata (its migrations see only these tables)."""


class SubmissionRow(Base):
    """A student's work for one assignment; one per enrollment and assignment."""

    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("enrollment_id", "assignment"),)

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    enrollment_id: Mapped[UUID]
    course_id: Mapped[UUID] = mapped_column(index=True)
    student_id: Mapped[UUID] = mapped_column(index=True)
    assignment: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime]
    grade: Mapped[GradeRow | None] = relationship(lazy="selectin")


class GradeRow(Base):
    """The grade of a submission: its key is the submission's, so there is one at most."""

    __tablename__ = "grades"

    submission_id: Mapped[UUID] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[float]
    max_score: Mapped[float]
    percent: Mapped[float]
    feedback: Mapped[str] = mapped_column(Text, default="")
    grader_id: Mapped[UUID]
    graded_at: Mapped[datetime]


# the event-sourced gradebooks (examples.grading.gradebook): store, snapshots, checkpoints
sourcing_tables(Base.metadata)
