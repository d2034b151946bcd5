"""Request and response models of the courses API, and its problem codes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from lms_shared.errors import ErrorCode
from lms_shared.security import SafeHtml

__all__ = [
    "COURSE_NOT_READY",
    "PROBLEMS",
    "Course",
    "CourseCreate",
    "CoursePatch",
    "CourseStatus",
    "Lesson",
    "LessonCreate",
    "Module",
    "ModuleCreate",
]

CourseStatus = Literal["draft", "published"]

COURSE_NOT_READY = ErrorCode("course-not-ready", 409, "Course cannot be published yet")

PROBLEMS: tuple[ErrorCode, ...] = (COURSE_NOT_READY,)
"""This service's own problem codes (passed to create_service)."""


class LessonCreate(BaseModel):
    """A new lesson of a module."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200, examples=["Why services fail"])
    duration_minutes: int = Field(ge=1, le=600, examples=[25])


class Lesson(LessonCreate):
    """A lesson."""

    id: UUID


class ModuleCreate(BaseModel):
    """A new module (a chapter) of a course."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200, examples=["Foundations"])


class Module(ModuleCreate):
    """A module and its lessons, in order."""

    id: UUID
    lessons: list[Lesson] = Field(default_factory=list)


class CourseCreate(BaseModel):
    """A new course; it starts as a draft."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        pattern=r"^[A-Z]{2,6}[0-9]{2,4}$",
        description="catalogue code, unique within the organization",
        examples=["CS101"],
    )
    title: str = Field(min_length=1, max_length=200, examples=["Distributed systems"])
    description: SafeHtml = Field(
        "",
        max_length=5000,
        description="rich text, sanitised on the way in (scripts, handlers, unknown tags removed)",
        examples=["<p>An <b>introduction</b> to failure.</p>"],
    )
    organization_id: UUID
    instructor_id: UUID


class CoursePatch(BaseModel):
    """What ``PATCH /v1/courses/{id}`` may change (a JSON Merge Patch, RFC 7396)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=200)
    description: SafeHtml | None = Field(None, max_length=5000)


class Course(CourseCreate):
    """A course with its outline."""

    id: UUID
    version: int = Field(description="grows by one on every change; the ETag")
    status: CourseStatus
    modules: list[Module] = Field(default_factory=list)
    created_at: datetime
    published_at: datetime | None = None
