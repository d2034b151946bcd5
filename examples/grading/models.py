"""Request and response models of the grading API, and its problem codes."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lms_shared.errors import ErrorCode
from lms_shared.events.sourcing import STREAM_VERSION_CONFLICT

__all__ = [
    "ALREADY_GRADED",
    "ENROLLMENT_INACTIVE",
    "PROBLEMS",
    "Grade",
    "GradeCreate",
    "Submission",
    "SubmissionCreate",
]

ENROLLMENT_INACTIVE = ErrorCode("enrollment-inactive", 409, "Enrollment is not active")
ALREADY_GRADED = ErrorCode("already-graded", 409, "Submission already graded")

PROBLEMS: tuple[ErrorCode, ...] = (
    ENROLLMENT_INACTIVE,
    ALREADY_GRADED,
    STREAM_VERSION_CONFLICT,  # the event-sourced gradebook changed under a grade
)
"""This service's own problem codes (passed to create_service)."""


class SubmissionCreate(BaseModel):
    """A student's work for one assignment, under their enrollment."""

    model_config = ConfigDict(extra="forbid")

    enrollment_id: UUID
    assignment: str = Field(min_length=1, max_length=200, examples=["Lab 1: retries"])
    content: str = Field("", max_length=100_000)


class GradeCreate(BaseModel):
    """An instructor's grade for a submission."""

    model_config = ConfigDict(extra="forbid")

    score: float = Field(ge=0, examples=[87.5])
    max_score: float = Field(100.0, gt=0, le=1000)
    feedback: str = Field("", max_length=5000)
    grader_id: UUID

    @model_validator(mode="after")
    def _score_within_max(self) -> GradeCreate:
        if self.score > self.max_score:
            raise ValueError(f"score {self.score:g} exceeds max_score {self.max_score:g}")
        return self


class Grade(GradeCreate):
    """A recorded grade."""

    percent: float = Field(description="score as a percentage of max_score")
    graded_at: datetime


class Submission(SubmissionCreate):
    """A submission and, once graded, its grade."""

    id: UUID
    course_id: UUID
    student_id: UUID
    submitted_at: datetime
    grade: Grade | None = None
