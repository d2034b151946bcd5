"""The gradebook of an enrollment, event sourced (``lms_shared.events.sourcing``).

A gradebook is opened when grading hears ``EnrollmentCreated`` (or, if a
grade comes first, by that grade) and records every grade; its state is the
fold of those events, kept in grading's own database (``lms_event_store``,
with a snapshot every 20 versions). Grades are recorded in the grade's own
transaction, so a grade and its gradebook entry commit together.

These events are grading's own: they are stored, not published.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from lms_shared import Clock
from lms_shared.db import Database
from lms_shared.events import Event, EventRegistry
from lms_shared.events.sourcing import Aggregate, AggregateRepository, EventStore, applies

__all__ = ["GradeRecorded", "Gradebook", "GradebookOpened", "GradebookView", "Gradebooks"]


class GradebookOpened(Event, type="lms.grading.gradebook.opened"):
    """The gradebook of an enrollment was opened."""

    enrollment_id: UUID
    course_id: UUID
    student_id: UUID


class GradeRecorded(Event, type="lms.grading.grade.recorded"):
    """A graded submission, as the gradebook keeps it."""

    submission_id: UUID
    assignment: str
    percent: float


class GradebookEntry(BaseModel):
    """One graded assignment."""

    submission_id: UUID
    assignment: str
    percent: float


class GradebookState(BaseModel):
    """What the events of a gradebook add up to."""

    open: bool = False
    course_id: UUID | None = None
    student_id: UUID | None = None
    entries: list[GradebookEntry] = Field(default_factory=list)


class GradebookView(BaseModel):
    """A gradebook as the API shows it."""

    enrollment_id: UUID
    course_id: UUID
    student_id: UUID
    entries: list[GradebookEntry]
    average: float | None = Field(description="mean percent of the graded assignments")
    version: int = Field(description="events the gradebook holds")


class Gradebook(Aggregate[GradebookState]):
    """The gradebook of one enrollment (its id is the enrollment's)."""

    state_model = GradebookState

    def open(self, course_id: UUID, student_id: UUID) -> None:
        """Open it (once)."""
        if not self.state.open:
            self.record_event(
                GradebookOpened(
                    enrollment_id=UUID(self.id), course_id=course_id, student_id=student_id
                )
            )

    def record(self, submission_id: UUID, assignment: str, percent: float) -> None:
        """Record a graded submission (each submission once)."""
        if any(e.submission_id == submission_id for e in self.state.entries):
            return
        self.record_event(
            GradeRecorded(submission_id=submission_id, assignment=assignment, percent=percent)
        )

    @applies(GradebookOpened)
    def _opened(self, event: GradebookOpened) -> None:
        self.state.open = True
        self.state.course_id, self.state.student_id = event.course_id, event.student_id

    @applies(GradeRecorded)
    def _recorded(self, event: GradeRecorded) -> None:
        self.state.entries.append(
            GradebookEntry(
                submission_id=event.submission_id,
                assignment=event.assignment,
                percent=event.percent,
            )
        )


class Gradebooks:
    """Grading's gradebooks: open, record, read.

    Args:
        db: grading's database (its migrations hold the event store's tables).
        clock: stamps the stored events.
    """

    def __init__(self, db: Database, clock: Clock) -> None:
        registry = EventRegistry(clock=clock)
        registry.register(GradebookOpened)
        registry.register(GradeRecorded)
        self.store = EventStore(db, registry=registry, source="/grading", clock=clock)
        self.books = AggregateRepository(self.store, Gradebook, snapshot_every=20)

    async def open(self, enrollment_id: UUID, course_id: UUID, student_id: UUID) -> None:
        """Open the enrollment's gradebook (nothing when it is open already)."""
        await self.books.update(str(enrollment_id), lambda book: book.open(course_id, student_id))

    async def record(
        self,
        tx: AsyncSession,
        *,
        enrollment_id: UUID,
        course_id: UUID,
        student_id: UUID,
        submission_id: UUID,
        assignment: str,
        percent: float,
    ) -> None:
        """Record a grade in ``tx``, the grade's own transaction (opening the book if needed).

        When the book changed meanwhile (the ``EnrollmentCreated`` consumer
        opened it between our read and our append), the conflict rolls the
        grade's unit back and its ``db.run`` grades again on the new book.

        Raises:
            StreamVersionConflict: the gradebook kept changing (409).
        """

        def grade(book: Gradebook) -> None:
            book.open(course_id, student_id)
            book.record(submission_id, assignment, percent)

        await self.books.update(str(enrollment_id), grade, tx=tx)

    async def view(self, enrollment_id: UUID) -> GradebookView | None:
        """The enrollment's gradebook, or ``None`` when it was never opened."""
        book = await self.books.get(str(enrollment_id))
        state = book.state
        if not state.open or state.course_id is None or state.student_id is None:
            return None
        percents = [e.percent for e in state.entries]
        return GradebookView(
            enrollment_id=enrollment_id,
            course_id=state.course_id,
            student_id=state.student_id,
            entries=state.entries,
            average=round(sum(percents) / len(percents), 2) if percents else None,
            version=book.version,
        )
