"""What enrollments hears: published courses, kept once each through the inbox.

courses publishes :class:`~examples.events.CoursePublished` through its
outbox; enrollments (group ``enrollments``) records each published course
in ``published_courses``, in the inbox's unit of work: the row and the
record that the event was handled commit together, so a redelivered event
changes nothing. ``GET /v1/published-courses/{course_id}`` shows what it
heard.

A handler that keeps failing is retried quickly (4 attempts, backoff from
0.2 s) and then the event lands in the dead-letter queue, which admins
list and replay over HTTP (``/admin/events/dead-letters``, ``events:admin``)
or with ``lms-shared events dlq list --service examples.enrollments.app``.

Outside production an admin can stage an outage of that handler (``PUT
/admin/drills/course-intake``): while it is on, the handler fails every
attempt with :class:`CourseIntakeDown`, so the demo shows a poisoned event
reaching the dead-letter queue, and its replay once the outage is over.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from examples.events import CoursePublished
from lms_shared import NotFound, Service
from lms_shared.auth import Principal
from lms_shared.http import require
from lms_shared.http.events import dead_letter_router
from lms_shared.models import Id
from lms_shared.resilience import Backoff

from .tables import PublishedCourseRow

__all__ = [
    "ATTEMPTS",
    "CourseIntake",
    "CourseIntakeDown",
    "CourseIntakeDrill",
    "PublishedCourse",
    "course_routers",
    "listen_to_courses",
]

ATTEMPTS = 4
"""Deliveries of a ``CoursePublished`` before it is dead-lettered."""
BACKOFF = Backoff(initial=0.2, maximum=2.0)
"""Between them: under 0.2 s, 0.4 s, 0.8 s (full jitter); a longer outage needs a replay."""


class CourseIntakeDown(RuntimeError):
    """The handler of published courses is in a staged outage (a drill; never in production)."""


class CourseIntake:
    """The state of the course-intake drill: ``None``, or why the handler fails."""

    def __init__(self) -> None:
        self.outage: str | None = None

    def check(self) -> None:
        """Raise while an outage is staged.

        Raises:
            CourseIntakeDown: the drill is on.
        """
        if self.outage is not None:
            raise CourseIntakeDown(f"course intake is down (drill): {self.outage}")


class CourseIntakeDrill(BaseModel):
    """Stage an outage of the handler of published courses, or end it."""

    model_config = ConfigDict(extra="forbid")

    failing: bool = Field(description="whether the handler fails every attempt")
    reason: str = Field(
        "a staged outage", min_length=1, max_length=200, examples=["catalogue re-indexing"]
    )


class PublishedCourse(BaseModel):
    """A published course, as enrollments heard of it (``CoursePublished``)."""

    course_id: UUID
    organization_id: UUID
    code: str
    title: str
    published_at: datetime
    heard_at: datetime


def listen_to_courses(service: Service) -> CourseIntake:
    """Subscribe ``service`` to :class:`CoursePublished` (its events in its database).

    Returns:
        The drill switch the handler obeys (see :func:`course_routers`).
    """
    service.events.use_database(service.db)
    intake = CourseIntake()

    @service.events.subscribe(
        CoursePublished, concurrency=4, max_attempts=ATTEMPTS, backoff=BACKOFF
    )
    async def course_published(event: CoursePublished, tx: AsyncSession) -> None:
        """Remember the published course (once: the inbox deduplicates)."""
        intake.check()
        await tx.merge(
            PublishedCourseRow(
                course_id=event.course_id,
                organization_id=event.organization_id,
                code=event.code,
                title=event.title,
                published_at=event.published_at,
                heard_at=service.clock.now(),
            )
        )
        service.log.info("course published", course_id=str(event.course_id), code=event.code)

    return intake


def course_routers(service: Service, intake: CourseIntake) -> list[APIRouter]:
    """The routes over what enrollments heard: published courses, dead letters, the drill.

    ``GET /v1/published-courses/{course_id}`` (``course:read``), the
    dead-letter API (``events:admin``) and, outside production only,
    ``PUT /admin/drills/course-intake`` (``events:admin``).
    """
    v1 = service.api(1, tags=["published courses"])

    @v1.get(
        "/published-courses/{course_id}",
        responses={404: {"description": "enrollments has not heard of it being published"}},
    )
    async def get_published_course(
        course_id: Id, _: Principal = require("course:read")
    ) -> PublishedCourse:
        """A published course, as enrollments heard of it through ``CoursePublished``."""
        async with service.db.transaction(read_only=True) as tx:
            row = await tx.get(PublishedCourseRow, course_id)
        if row is None:
            raise NotFound(f"enrollments has not heard of course {course_id} being published")
        return PublishedCourse.model_validate(row, from_attributes=True)

    routers = [v1, dead_letter_router(service.events)]
    if service.settings.env != "production":
        drills = APIRouter(prefix="/admin/drills", tags=["drills"])

        @drills.put("/course-intake")
        async def stage_course_intake_outage(
            body: CourseIntakeDrill, _: Principal = require("events:admin")
        ) -> CourseIntakeDrill:
            """Stage an outage of the handler of published courses, or end it (not in production).

            While it is on, every ``CoursePublished`` fails its handler until
            it is dead-lettered; end it, then replay the dead letters.
            """
            intake.outage = body.reason if body.failing else None
            service.log.warning("course intake drill", failing=body.failing, reason=body.reason)
            return body

        routers.append(drills)
    return routers
