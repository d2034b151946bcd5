"""Where enrollments keeps its data: its table, through ``service.db``.

:class:`EnrollmentStore` is the repository the routes call. "At most one
active enrollment per student and course" is a partial unique index: an
enrollment is inserted in a savepoint, and when the index refuses it the
same unit of work finds the enrollment that is already there. Withdrawing
keeps the enrollment (status ``withdrawn``); dropping one made by mistake
soft-deletes it: it is gone from every read and list, but kept in the table.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.events import EnrollmentCreated
from examples.persistence import violated
from lms_shared import Clock, Conflict, NotFound
from lms_shared.db import ConstraintViolation, Database, ListQuery, QuerySpec
from lms_shared.events import EventBus
from lms_shared.models import Enrollment as Lifecycle
from lms_shared.models import EnrollmentStatus, PageParams, transition

from .models import ALREADY_ENROLLED, Enrollment, EnrollmentCreate
from .tables import ACTIVE_ENROLLMENT, EnrollmentRow

__all__ = ["ENROLLMENTS", "EnrollmentStore"]

ENROLLMENTS = QuerySpec(
    EnrollmentRow,
    filters={
        "course_id": ["eq", "in"],
        "user_id": ["eq", "in"],
        "status": ["eq"],
        "enrolled_at": ["gte", "lt"],
    },
    sorts=["enrolled_at"],
    default_sort="enrolled_at",
)
"""``GET /v1/enrollments``: ``?course_id=...&status=active&sort=-enrolled_at``."""


LIFECYCLE = {"active": EnrollmentStatus.ACTIVE, "withdrawn": EnrollmentStatus.DROPPED}
"""Stored status -> the shared lifecycle's (``lms_shared.models``): withdrawn is its ``dropped``."""
STORED = {status: stored for stored, status in LIFECYCLE.items()}


def lifecycle(row: EnrollmentRow) -> Lifecycle:
    """The shared enrollment DTO of a row, for :func:`~lms_shared.models.transition`."""
    return Lifecycle(
        id=row.id,
        version=1,
        created_at=row.enrolled_at,
        updated_at=row.withdrawn_at or row.enrolled_at,
        course_id=row.course_id,
        user_id=row.user_id,
        status=LIFECYCLE[row.status],
    )


def enrollment_out(row: EnrollmentRow) -> Enrollment:
    """The API's view of an enrollment row."""
    return Enrollment.model_validate(
        {
            "id": row.id,
            "course_id": row.course_id,
            "user_id": row.user_id,
            "status": row.status,
            "enrolled_at": row.enrolled_at,
            "withdrawn_at": row.withdrawn_at,
        }
    )


class EnrollmentStore:
    """Enrollments of users in courses, in the enrollments database.

    Args:
        db: the service's database (``service.db``).
        clock: stamps ``enrolled_at``, ``withdrawn_at`` and ``deleted_at``.
        events: publishes :class:`~examples.events.EnrollmentCreated` through
            its outbox, in the transaction that records the enrollment.
    """

    def __init__(self, db: Database, clock: Clock, events: EventBus | None = None) -> None:
        self._db = db
        self._clock = clock
        self._events = events

    async def enroll(self, data: EnrollmentCreate) -> Enrollment:
        """Record an active enrollment.

        Raises:
            Conflict: ``already-enrolled``, the user has an active
                enrollment in the course (its id is in the problem).
        """

        async def insert(tx: AsyncSession) -> Enrollment:
            row = EnrollmentRow(
                course_id=data.course_id, user_id=data.user_id, enrolled_at=self._clock.now()
            )
            try:
                async with self._db.transaction():  # nested: a savepoint of this unit
                    tx.add(row)
                    await tx.flush()
            except ConstraintViolation as exc:
                if not violated(exc, ACTIVE_ENROLLMENT):
                    raise
                existing = await tx.scalar(
                    select(EnrollmentRow.id).where(
                        EnrollmentRow.course_id == data.course_id,
                        EnrollmentRow.user_id == data.user_id,
                        EnrollmentRow.status == "active",
                    )
                )
                raise Conflict(
                    f"user {data.user_id} is already enrolled in course {data.course_id}",
                    code=ALREADY_ENROLLED,
                    enrollment_id=str(existing),
                ) from exc
            enrollment = enrollment_out(row)
            if self._events is not None:  # in this transaction: both commit, or neither
                created = EnrollmentCreated(
                    enrollment_id=enrollment.id,
                    course_id=enrollment.course_id,
                    user_id=enrollment.user_id,
                    enrolled_at=enrollment.enrolled_at,
                )
                await self._events.publish(created, outbox=tx, key=str(enrollment.course_id))
            return enrollment

        return await self._db.run(insert)

    async def enrollment(self, enrollment_id: UUID) -> Enrollment:
        """One enrollment.

        Raises:
            NotFound: it does not exist, or was dropped.
        """
        async with self._db.transaction(read_only=True) as tx:
            return enrollment_out(await _enrollment(tx, enrollment_id))

    async def withdraw(self, enrollment_id: UUID) -> Enrollment:
        """Withdraw an active enrollment (the shared lifecycle's ``active -> dropped``).

        Raises:
            NotFound: it does not exist, or was dropped.
            IllegalTransition: ``illegal-transition`` (409), it is already withdrawn.
        """

        async def withdraw(tx: AsyncSession) -> Enrollment:
            row = await _enrollment(tx, enrollment_id, lock=True)
            now = self._clock.now()
            moved = transition(lifecycle(row), EnrollmentStatus.DROPPED, at=now)
            row.status = STORED[moved.status]
            row.withdrawn_at = now
            await tx.flush()
            return enrollment_out(row)

        return await self._db.run(withdraw)

    async def drop(self, enrollment_id: UUID) -> None:
        """Drop an enrollment made by mistake (a soft delete).

        Raises:
            NotFound: it does not exist, or was already dropped.
        """

        async def drop(tx: AsyncSession) -> None:
            row = await _enrollment(tx, enrollment_id, lock=True)
            row.soft_delete(self._clock.now())

        await self._db.run(drop)

    async def enrollments(
        self, query: ListQuery[EnrollmentRow], params: PageParams
    ) -> tuple[list[Enrollment], str | None]:
        """A page of enrollments, filtered and sorted as asked, and the next cursor."""
        async with self._db.transaction(read_only=True) as tx:
            rows, cursor = await query.page(tx, select(EnrollmentRow), params)
        return [enrollment_out(row) for row in rows], cursor


async def _enrollment(
    tx: AsyncSession, enrollment_id: UUID, *, lock: bool = False
) -> EnrollmentRow:
    """An enrollment that was not dropped; ``lock`` holds its row for the unit of work."""
    statement = select(EnrollmentRow).where(EnrollmentRow.id == enrollment_id)
    if lock:
        statement = statement.with_for_update()
    row = await tx.scalar(statement)
    if row is None:
        raise NotFound(f"enrollment {enrollment_id} does not exist")
    return row
