"""Where enrollments keeps its data: in memory for now, behind one class.

The database layer replaces :class:`EnrollmentStore` with the same methods.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from lms_shared import Clock, Conflict, NotFound
from lms_shared.http import PageParams, paginate

from .models import ALREADY_ENROLLED, Enrollment, EnrollmentCreate, EnrollmentStatus

__all__ = ["EnrollmentStore"]


class EnrollmentStore:
    """Enrollments of users in courses.

    Args:
        clock: stamps ``enrolled_at`` and ``withdrawn_at``.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._enrollments: dict[UUID, Enrollment] = {}

    async def enroll(self, data: EnrollmentCreate) -> Enrollment:
        """Record an active enrollment.

        Raises:
            Conflict: ``already-enrolled``, the user has an active
                enrollment in the course.
        """
        for existing in self._enrollments.values():
            if (
                existing.course_id == data.course_id
                and existing.user_id == data.user_id
                and existing.status == "active"
            ):
                raise Conflict(
                    f"user {data.user_id} is already enrolled in course {data.course_id}",
                    code=ALREADY_ENROLLED,
                    enrollment_id=str(existing.id),
                )
        enrollment = Enrollment(
            id=uuid.uuid4(), status="active", enrolled_at=self._clock.now(), **data.model_dump()
        )
        self._enrollments[enrollment.id] = enrollment
        return enrollment

    async def enrollment(self, enrollment_id: UUID) -> Enrollment:
        """One enrollment.

        Raises:
            NotFound: it does not exist.
        """
        try:
            return self._enrollments[enrollment_id]
        except KeyError:
            raise NotFound(f"enrollment {enrollment_id} does not exist") from None

    async def withdraw(self, enrollment_id: UUID) -> Enrollment:
        """Withdraw an active enrollment.

        Raises:
            NotFound: it does not exist.
            Conflict: it is already withdrawn.
        """
        enrollment = await self.enrollment(enrollment_id)
        if enrollment.status != "active":
            raise Conflict(f"enrollment {enrollment_id} is already withdrawn")
        withdrawn = enrollment.model_copy(
            update={"status": "withdrawn", "withdrawn_at": self._clock.now()}
        )
        self._enrollments[enrollment_id] = withdrawn
        return withdrawn

    async def enrollments(
        self,
        params: PageParams,
        *,
        course_id: UUID | None = None,
        user_id: UUID | None = None,
        status: EnrollmentStatus | None = None,
    ) -> tuple[list[Enrollment], str | None]:
        """A page of enrollments, optionally filtered, and the next cursor."""
        enrollments = [
            e
            for e in self._enrollments.values()
            if (course_id is None or e.course_id == course_id)
            and (user_id is None or e.user_id == user_id)
            and (status is None or e.status == status)
        ]
        return paginate(enrollments, params, key=lambda e: str(e.id))
