"""Where grading keeps its data: its tables, through ``service.db``.

:class:`GradingStore` is the repository the routes call. "One submission
per enrollment and assignment" is a unique constraint, and "graded once"
is the grade's primary key (the submission's id): racing requests cannot
both win, and the loser gets a 409 problem.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.persistence import violated
from lms_shared import Clock, Conflict, NotFound
from lms_shared.db import ConstraintViolation, Database, ListQuery, QuerySpec
from lms_shared.models import PageParams

from .gradebook import Gradebooks
from .models import ALREADY_GRADED, Grade, GradeCreate, Submission, SubmissionCreate
from .tables import GradeRow, SubmissionRow

__all__ = ["SUBMISSIONS", "GradingStore"]

SUBMISSIONS = QuerySpec(
    SubmissionRow,
    filters={
        "course_id": ["eq"],
        "student_id": ["eq", "in"],
        "enrollment_id": ["eq"],
        "assignment": ["eq", "prefix"],
    },
    sorts=["submitted_at", "assignment"],
    default_sort="submitted_at",
)
"""``GET /v1/submissions``: ``?course_id=...&assignment[prefix]=Lab&sort=-submitted_at``."""


def grade_out(row: GradeRow) -> Grade:
    """The API's view of a grade row."""
    return Grade(
        score=row.score,
        max_score=row.max_score,
        percent=row.percent,
        feedback=row.feedback,
        grader_id=row.grader_id,
        graded_at=row.graded_at,
    )


def submission_out(row: SubmissionRow) -> Submission:
    """The API's view of a submission row and its grade."""
    return Submission(
        id=row.id,
        enrollment_id=row.enrollment_id,
        course_id=row.course_id,
        student_id=row.student_id,
        assignment=row.assignment,
        content=row.content,
        submitted_at=row.submitted_at,
        grade=grade_out(row.grade) if row.grade is not None else None,
    )


class GradingStore:
    """Submissions and their grades, in the grading database.

    Args:
        db: the service's database (``service.db``).
        clock: stamps ``submitted_at`` and ``graded_at``.
        gradebooks: where each grade is also recorded, in its transaction.
    """

    def __init__(self, db: Database, clock: Clock, gradebooks: Gradebooks | None = None) -> None:
        self._db = db
        self._clock = clock
        self._gradebooks = gradebooks

    async def submit(
        self, data: SubmissionCreate, *, course_id: UUID, student_id: UUID
    ) -> Submission:
        """Record a submission of an (already checked) enrollment.

        Raises:
            Conflict: the enrollment already has a submission for the assignment.
        """

        async def insert(tx: AsyncSession) -> Submission:
            row = SubmissionRow(
                **data.model_dump(),
                course_id=course_id,
                student_id=student_id,
                submitted_at=self._clock.now(),
                grade=None,
            )
            tx.add(row)
            await tx.flush()
            return submission_out(row)

        try:
            return await self._db.run(insert)
        except ConstraintViolation as exc:
            if not violated(exc, "uq_submissions_enrollment_id_assignment"):
                raise
            raise Conflict(
                f"{data.assignment!r} was already submitted under enrollment {data.enrollment_id}"
            ) from exc

    async def submission(self, submission_id: UUID) -> Submission:
        """One submission and its grade.

        Raises:
            NotFound: it does not exist.
        """
        async with self._db.transaction(read_only=True) as tx:
            row = await tx.get(SubmissionRow, submission_id)
        if row is None:
            raise NotFound(f"submission {submission_id} does not exist")
        return submission_out(row)

    async def grade(self, submission_id: UUID, data: GradeCreate) -> Grade:
        """Record the grade of a submission.

        Raises:
            NotFound: the submission does not exist.
            Conflict: ``already-graded``.
        """

        async def insert(tx: AsyncSession) -> Grade:
            # columns, not the row: loading it would load its grade, and a second
            # grade would then clash in the session instead of at the primary key
            found = (
                await tx.execute(
                    select(
                        SubmissionRow.enrollment_id,
                        SubmissionRow.course_id,
                        SubmissionRow.student_id,
                        SubmissionRow.assignment,
                    ).where(SubmissionRow.id == submission_id)
                )
            ).first()
            if found is None:
                raise NotFound(f"submission {submission_id} does not exist")
            row = GradeRow(
                submission_id=submission_id,
                percent=round(100 * data.score / data.max_score, 2),
                graded_at=self._clock.now(),
                **data.model_dump(),
            )
            tx.add(row)
            await tx.flush()
            if self._gradebooks is not None:  # the grade and its gradebook entry commit together
                await self._gradebooks.record(
                    tx,
                    enrollment_id=found.enrollment_id,
                    course_id=found.course_id,
                    student_id=found.student_id,
                    submission_id=submission_id,
                    assignment=found.assignment,
                    percent=row.percent,
                )
            return grade_out(row)

        try:
            return await self._db.run(insert)
        except ConstraintViolation as exc:
            if not violated(exc, "pk_grades"):
                raise
            raise Conflict(
                f"submission {submission_id} is already graded", code=ALREADY_GRADED
            ) from exc

    async def submissions(
        self, query: ListQuery[SubmissionRow], params: PageParams
    ) -> tuple[list[Submission], str | None]:
        """A page of submissions with their grades, filtered and sorted as asked."""
        async with self._db.transaction(read_only=True) as tx:
            rows, cursor = await query.page(tx, select(SubmissionRow), params)
        return [submission_out(row) for row in rows], cursor
