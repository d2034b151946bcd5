"""What grading hears: new enrollments, whose gradebooks it opens.

enrollments publishes :class:`~examples.events.EnrollmentCreated` through
its outbox; grading (group ``grading``) opens the enrollment's event-sourced
gradebook (:mod:`examples.grading.gradebook`; a redelivery opens nothing
twice). The
handler runs in the event's trace: the demo's enrollment request, the
calls enrollments made to identity and courses, the publication and this
handling are one trace (``lms-shared traces show``).
"""

from __future__ import annotations

from examples.events import EnrollmentCreated
from lms_shared import Service

from .gradebook import Gradebooks

__all__ = ["open_gradebooks"]


def open_gradebooks(service: Service, gradebooks: Gradebooks) -> None:
    """Subscribe ``service`` to :class:`EnrollmentCreated`."""

    @service.events.subscribe(EnrollmentCreated, concurrency=4)
    async def enrollment_created(event: EnrollmentCreated) -> None:
        """Open the student's gradebook for the course."""
        await gradebooks.open(event.enrollment_id, event.course_id, event.user_id)
        service.log.info(
            "gradebook opened",
            enrollment_id=str(event.enrollment_id),
            course_id=str(event.course_id),
        )
