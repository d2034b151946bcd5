"""Assignments, students' submissions and their grades.

A submission's content and a grade's score and feedback are personal data
(student records): they are redacted wherever operators see data.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from lms_shared.models._base import LmsModel, Resource
from lms_shared.models._types import LongText, Score, Text, Title, UtcDatetime, WebUrl
from lms_shared.models._validation import at_most, not_before
from lms_shared.redaction._personal import Personal

__all__ = [
    "Assignment",
    "AssignmentCreate",
    "AssignmentUpdate",
    "Grade",
    "GradeCreate",
    "GradeUpdate",
    "Submission",
    "SubmissionCreate",
    "SubmissionUpdate",
]

_STORED: JsonDict = {
    "id": "1d2e3f4a-5b6c-4d7e-8f9a-0b1c2d3e4f5a",
    "version": 1,
    "created_at": "2026-03-09T12:00:00Z",
    "updated_at": "2026-03-09T12:00:00Z",
}
_ASSIGNMENT: JsonDict = {
    "course_id": "5c9e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a",
    "title": "Problem set 1",
    "instructions": "Answer all five questions; show your working.",
    "opens_at": "2026-03-09T09:00:00Z",
    "due_at": "2026-03-16T23:59:59Z",
    "max_score": 50.0,
    "late_submissions": False,
}
_SUBMISSION: JsonDict = {
    "assignment_id": _STORED["id"],
    "user_id": "3f2b8c1d-7e6a-4f5b-8c9d-0a1b2c3d4e5f",
    "content": "1. The mean is 4.2 ...",
    "attachments": ["https://files.example.org/submissions/ps1-ada.pdf"],
}
_GRADE: JsonDict = {
    "score": 43.5,
    "max_score": 50.0,
    "feedback": "Good work; question 4 needs units.",
}

_Instructions = Annotated[Text | None, Field(description="what to do (Markdown)")]
_Opens = Annotated[UtcDatetime | None, Field(description="submissions accepted from (UTC)")]
_Due = Annotated[UtcDatetime, Field(description="deadline (UTC), after opens_at")]
_MaxScore = Annotated[Score, Field(gt=0, description="the most points available")]
_Content = Annotated[LongText, Personal("education"), Field(description="the student's answer")]
_Attachments = Annotated[list[WebUrl], Field(max_length=10, description="uploaded files")]
_Points = Annotated[Score, Personal("education"), Field(description="points awarded")]
_Feedback = Annotated[Text, Personal("education"), Field(description="feedback to the student")]


class AssignmentCreate(LmsModel, schema_name="lms.assignment.create"):
    """A new assignment of a course."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ASSIGNMENT]})

    course_id: UUID = Field(description="the course")
    title: Title = Field(description="title shown to students")
    instructions: _Instructions = None
    opens_at: _Opens = None
    due_at: _Due
    max_score: _MaxScore
    late_submissions: bool = Field(default=False, description="accept submissions after due_at")

    _window = not_before("opens_at", "due_at", allow_equal=False)


class AssignmentUpdate(LmsModel, schema_name="lms.assignment.update"):
    """Changes to an assignment; absent fields stay as they are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"due_at": "2026-03-18T23:59:59Z"}]})

    title: Title | None = None
    instructions: _Instructions = None
    opens_at: _Opens = None
    due_at: _Due | None = None
    max_score: _MaxScore | None = None
    late_submissions: bool | None = None

    _window = not_before("opens_at", "due_at", allow_equal=False)


class Assignment(Resource, schema_name="lms.assignment"):
    """An assignment: work students submit by a deadline for a score."""

    model_config = ConfigDict(json_schema_extra={"examples": [{**_STORED, **_ASSIGNMENT}]})

    course_id: UUID = Field(description="the course")
    title: Title = Field(description="title shown to students")
    instructions: _Instructions = None
    opens_at: _Opens = None
    due_at: _Due
    max_score: _MaxScore
    late_submissions: bool = Field(description="accept submissions after due_at")

    _window = not_before("opens_at", "due_at", allow_equal=False)


class SubmissionCreate(LmsModel, schema_name="lms.submission.create"):
    """A student's answer to an assignment."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SUBMISSION]})

    assignment_id: UUID = Field(description="the assignment")
    user_id: UUID = Field(description="the student")
    content: _Content
    attachments: _Attachments = []


class SubmissionUpdate(LmsModel, schema_name="lms.submission.update"):
    """A revised answer (before the deadline); absent fields stay as they are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"content": "1. The mean is 4.3"}]})

    content: _Content | None = None
    attachments: _Attachments | None = None


class Submission(Resource, schema_name="lms.submission"):
    """A submitted answer; ``late`` when it came after the deadline."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**_STORED, **_SUBMISSION, "submitted_at": "2026-03-15T20:41:07Z", "late": False}
            ]
        }
    )

    assignment_id: UUID = Field(description="the assignment")
    user_id: UUID = Field(description="the student")
    content: _Content
    attachments: _Attachments = []
    submitted_at: UtcDatetime = Field(description="when it was (last) submitted (UTC)")
    late: bool = Field(default=False, description="submitted after the deadline")


class GradeCreate(LmsModel, schema_name="lms.grade.create"):
    """A grade for a submission; the score may not exceed the maximum."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"submission_id": _STORED["id"], **_GRADE}]}
    )

    submission_id: UUID = Field(description="the graded submission")
    max_score: _MaxScore
    score: _Points
    feedback: _Feedback | None = None

    _score = at_most("score", "max_score")


class GradeUpdate(LmsModel, schema_name="lms.grade.update"):
    """A corrected grade; absent fields stay as they are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"score": 45.0}]})

    max_score: _MaxScore | None = None
    score: _Points | None = None
    feedback: _Feedback | None = None

    _score = at_most("score", "max_score")


class Grade(Resource, schema_name="lms.grade"):
    """A grade: score and feedback are personal data (redacted for operators)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_STORED,
                    "submission_id": _STORED["id"],
                    "user_id": _SUBMISSION["user_id"],
                    "graded_by": "7e6d5c4b-3a2f-4e1d-8c0b-9a8f7e6d5c4b",
                    **_GRADE,
                }
            ]
        }
    )

    submission_id: UUID = Field(description="the graded submission")
    user_id: UUID = Field(description="the student")
    graded_by: UUID = Field(description="the instructor or assistant who graded it")
    max_score: _MaxScore
    score: _Points
    feedback: _Feedback | None = None

    _score = at_most("score", "max_score")
