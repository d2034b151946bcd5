"""Where grading keeps its data: in memory for now, behind one class.

The database layer replaces :class:`GradingStore` with the same methods.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from lms_shared import Clock, Conflict, NotFound
from lms_shared.http import PageParams, paginate

from .models import ALREADY_GRADED, Grade, GradeCreate, Submission, SubmissionCreate

__all__ = ["GradingStore"]


class GradingStore:
    """Submissions and their grades.

    Args:
        clock: stamps ``submitted_at`` and ``graded_at``.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._submissions: dict[UUID, Submission] = {}

    async def submit(
        self, data: SubmissionCreate, *, course_id: UUID, student_id: UUID
    ) -> Submission:
        """Record a submission of an (already checked) enrollment.

        Raises:
            Conflict: the enrollment already has a submission for the assignment.
        """
        for existing in self._submissions.values():
            if (
                existing.enrollment_id == data.enrollment_id
                and existing.assignment == data.assignment
            ):
                raise Conflict(
                    f"{data.assignment!r} was already submitted"
                    f" under enrollment {data.enrollment_id}",
                    submission_id=str(existing.id),
                )
        submission = Submission(
            id=uuid.uuid4(),
            course_id=course_id,
            student_id=student_id,
            submitted_at=self._clock.now(),
            **data.model_dump(),
        )
        self._submissions[submission.id] = submission
        return submission

    async def submission(self, submission_id: UUID) -> Submission:
        """One submission.

        Raises:
            NotFound: it does not exist.
        """
        try:
            return self._submissions[submission_id]
        except KeyError:
            raise NotFound(f"submission {submission_id} does not exist") from None

    async def grade(self, submission_id: UUID, data: GradeCreate) -> Grade:
        """Record the grade of a submission.

        Raises:
            NotFound: the submission does not exist.
            Conflict: ``already-graded``.
        """
        submission = await self.submission(submission_id)
        if submission.grade is not None:
            raise Conflict(f"submission {submission_id} is already graded", code=ALREADY_GRADED)
        grade = Grade(
            percent=round(100 * data.score / data.max_score, 2),
            graded_at=self._clock.now(),
            **data.model_dump(),
        )
        self._submissions[submission_id] = submission.model_copy(update={"grade": grade})
        return grade

    async def submissions(
        self,
        params: PageParams,
        *,
        course_id: UUID | None = None,
        student_id: UUID | None = None,
        assignment: str | None = None,
    ) -> tuple[list[Submission], str | None]:
        """A page of submissions, optionally filtered, and the next cursor."""
        submissions = [
            s
            for s in self._submissions.values()
            if (course_id is None or s.course_id == course_id)
            and (student_id is None or s.student_id == student_id)
            and (assignment is None or s.assignment == assignment)
        ]
        return paginate(submissions, params, key=lambda s: str(s.id))
