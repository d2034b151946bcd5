"""Events the bus, outbox, inbox and dead-letter tests publish and consume."""

from __future__ import annotations

from uuid import UUID

from lms_shared.events import Event


class CoursePublished(Event, type="lms.test.course.published", version=2):
    """A course went live (v2: ``title``; v1 called it ``name``)."""

    course_id: UUID
    title: str


class EnrollmentCreated(Event, type="lms.test.enrollment.created"):
    """A student enrolled."""

    enrollment_id: UUID
    course_id: UUID


class Unregistered(Event, type="lms.test.unregistered"):
    """Never declared on any bus."""

    value: int
