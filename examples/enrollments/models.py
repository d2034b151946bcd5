"""Request and response models of the enrollments API, and its problem codes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from lms_shared.errors import ErrorCode

__all__ = [
    "ALREADY_ENROLLED",
    "COURSE_NOT_PUBLISHED",
    "NOT_A_STUDENT",
    "PROBLEMS",
    "Enrollment",
    "EnrollmentCreate",
    "EnrollmentStatus",
]

EnrollmentStatus = Literal["active", "withdrawn"]

COURSE_NOT_PUBLISHED = ErrorCode("course-not-published", 409, "Course is not published")
NOT_A_STUDENT = ErrorCode("not-a-student", 409, "Only students can enroll")
ALREADY_ENROLLED = ErrorCode("already-enrolled", 409, "Already enrolled")

PROBLEMS: tuple[ErrorCode, ...] = (
    COURSE_NOT_PUBLISHED,
    NOT_A_STUDENT,
    ALREADY_ENROLLED,
)
"""This service's own problem codes (passed to create_service)."""


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
