"""Request and response models of the enrollments API, and its problem codes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from lms_shared.errors import error_code

__all__ = [
    "ALREADY_ENROLLED",
    "COURSE_NOT_PUBLISHED",
    "NOT_A_STUDENT",
    "Enrollment",
    "EnrollmentCreate",
    "EnrollmentStatus",
]

EnrollmentStatus = Literal["active", "withdrawn"]

COURSE_NOT_PUBLISHED = error_code("course-not-published", 409, "Course is not published")
NOT_A_STUDENT = error_code("not-a-student", 409, "Only students can enroll")
ALREADY_ENROLLED = error_code("already-enrolled", 409, "Already enrolled")


class EnrollmentCreate(BaseModel):
    """Enroll a student in a course."""

    model_config = ConfigDict(extra="forbid")

    course_id: UUID
    user_id: UUID


class Enrollment(EnrollmentCreate):
    """A student's enrollment in a course."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    status: EnrollmentStatus
    enrolled_at: datetime
    withdrawn_at: datetime | None = None
