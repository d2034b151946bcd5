"""What enrollments hears: published courses, kept once each through the inbox.

courses publishes :class:`~examples.events.CoursePublished` through its
outbox; enrollments (group ``enrollments``) records each published course
in ``published_courses``, in the inbox's unit of work: the row and the
record that the event was handled commit together, so a redelivered event
changes nothing. An event that keeps failing lands in the dead-letter
queue (``lms-shared events dlq list --service examples.enrollments.app``).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from examples.events import CoursePublished
from lms_shared import Service

from .tables import PublishedCourseRow

__all__ = ["listen_to_courses"]


def listen_to_courses(service: Service) -> None:
    """Subscribe ``service`` to :class:`CoursePublished` (its events in its database)."""
    service.events.use_database(service.db)

    @service.events.subscribe(CoursePublished, concurrency=4)
    async def course_published(event: CoursePublished, tx: AsyncSession) -> None:
        """Remember the published course (once: the inbox deduplicates)."""
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
