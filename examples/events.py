"""The platform's events: the contracts between its services (CloudEvents types).

courses publishes :class:`CoursePublished` through its transactional
outbox, in the transaction that publishes the course; enrollments keeps the
published courses it heard of (``published_courses``), once per event
through its inbox. enrollments publishes :class:`EnrollmentCreated` through
its outbox, in the transaction that records the enrollment; grading opens
the student's gradebook when it hears of it. Every service declares what it publishes
(``service.events.publishes``) and what it consumes (``subscribe``), which
is what ``lms-shared events schema`` exports as AsyncAPI.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import AwareDatetime

from lms_shared.events import Event

__all__ = ["CoursePublished", "EnrollmentCreated"]


class CoursePublished(Event, type="lms.course.published"):
    """A draft course went live: students may enroll in it."""

    course_id: UUID
    organization_id: UUID
    code: str
    title: str
    published_at: AwareDatetime


class EnrollmentCreated(Event, type="lms.enrollment.created"):
    """A student was enrolled in a course: grading opens the gradebook."""

    enrollment_id: UUID
    course_id: UUID
    user_id: UUID
    enrolled_at: AwareDatetime
