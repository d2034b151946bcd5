"""Courses, their modules and lessons.

A course holds ordered modules, a module holds ordered lessons; the read
model of a course may carry its whole outline (``modules[].lessons[]``).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Self
from uuid import UUID

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from lms_shared.models._base import LmsModel, Resource
from lms_shared.models._types import LocaleCode, LongText, ShortText, Slug, Title, WebUrl
from lms_shared.models._validation import not_before

__all__ = [
    "Course",
    "CourseCreate",
    "CourseStatus",
    "CourseUpdate",
    "Lesson",
    "LessonCreate",
    "LessonKind",
    "LessonUpdate",
    "Module",
    "ModuleCreate",
    "ModuleUpdate",
]

_STORED: JsonDict = {
    "id": "5c9e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a",
    "version": 3,
    "created_at": "2026-01-05T09:30:00Z",
    "updated_at": "2026-02-11T16:04:12.5Z",
}
_COURSE: JsonDict = {
    "organization_id": "0b7c2a4e-5d2f-4c1b-9a53-6f0e1d2c3b4a",
    "slug": "intro-to-statistics",
    "title": "Introduction to Statistics",
    "summary": "Descriptive statistics, probability and inference, with exercises.",
    "language": "en",
    "starts_on": "2026-03-02",
    "ends_on": "2026-06-26",
    "capacity": 120,
    "tags": ["statistics", "year-1"],
}
_MODULE: JsonDict = {
    "title": "Describing data",
    "summary": "Averages, spread and plots.",
    "position": 0,
}
_LESSON: JsonDict = {
    "title": "Mean, median and mode",
    "kind": "video",
    "video_url": "https://videos.example.org/stats/101.mp4",
    "duration_minutes": 12,
    "position": 0,
}


class CourseStatus(StrEnum):
    """Where a course is in its life: only published courses take enrollments."""

    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class LessonKind(StrEnum):
    """What a lesson is made of."""

    ARTICLE = "article"
    VIDEO = "video"
    QUIZ = "quiz"
    ASSIGNMENT = "assignment"


_Title = Annotated[Title, Field(description="title shown to learners")]
_Summary = Annotated[ShortText | None, Field(description="a paragraph or two")]
_Position = Annotated[int, Field(ge=0, le=10_000, description="order within its parent, from 0")]
_Minutes = Annotated[int | None, Field(ge=1, le=1_440, description="expected duration, minutes")]
_Content = Annotated[LongText | None, Field(description="the lesson's text (Markdown)")]
_VideoUrl = Annotated[WebUrl | None, Field(description="the video (video lessons only)")]
_Capacity = Annotated[int | None, Field(ge=1, le=100_000, description="most active students")]
_Tags = Annotated[list[Slug], Field(max_length=20, description="search tags")]
_Starts = Annotated[date | None, Field(description="first day of teaching")]
_Ends = Annotated[date | None, Field(description="last day of teaching (not before starts_on)")]


def _check_video(kind: LessonKind | None, video_url: object) -> None:
    if kind is LessonKind.VIDEO and video_url is None:
        raise PydanticCustomError("video_url_missing", "a video lesson needs a video_url")


class LessonCreate(LmsModel, schema_name="lms.lesson.create"):
    """A new lesson of a module."""

    model_config = ConfigDict(json_schema_extra={"examples": [_LESSON]})

    title: _Title
    kind: LessonKind = Field(description="article, video, quiz or assignment")
    content: _Content = None
    video_url: _VideoUrl = None
    duration_minutes: _Minutes = None
    position: _Position = 0

    @model_validator(mode="after")
    def _video(self) -> Self:
        _check_video(self.kind, self.video_url)
        return self


class LessonUpdate(LmsModel, schema_name="lms.lesson.update"):
    """Changes to a lesson; absent fields stay as they are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"duration_minutes": 15}]})

    title: _Title | None = None
    kind: LessonKind | None = None
    content: _Content = None
    video_url: _VideoUrl = None
    duration_minutes: _Minutes = None
    position: _Position | None = None


class Lesson(Resource, schema_name="lms.lesson"):
    """A lesson: one unit of teaching inside a module."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_STORED, "module_id": _STORED["id"], **_LESSON}]}
    )

    module_id: UUID = Field(description="the lesson's module")
    title: _Title
    kind: LessonKind
    content: _Content = None
    video_url: _VideoUrl = None
    duration_minutes: _Minutes = None
    position: _Position

    @model_validator(mode="after")
    def _video(self) -> Self:
        _check_video(self.kind, self.video_url)
        return self


class ModuleCreate(LmsModel, schema_name="lms.module.create"):
    """A new module of a course."""

    model_config = ConfigDict(json_schema_extra={"examples": [_MODULE]})

    title: _Title
    summary: _Summary = None
    position: _Position = 0


class ModuleUpdate(LmsModel, schema_name="lms.module.update"):
    """Changes to a module; absent fields stay as they are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"position": 2}]})

    title: _Title | None = None
    summary: _Summary = None
    position: _Position | None = None


class Module(Resource, schema_name="lms.module"):
    """A module: an ordered group of lessons."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_STORED, "course_id": _STORED["id"], **_MODULE}]}
    )

    course_id: UUID = Field(description="the module's course")
    title: _Title
    summary: _Summary = None
    position: _Position
    lessons: list[Lesson] = Field(default=[], max_length=200, description="lessons, in order")


class CourseCreate(LmsModel, schema_name="lms.course.create"):
    """A new course (created as a draft)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_COURSE]})

    organization_id: UUID = Field(description="the organization that teaches it")
    slug: Slug = Field(description="unique within the organization, used in URLs")
    title: _Title
    summary: _Summary = None
    language: LocaleCode = Field(default="en", description="teaching language (BCP 47)")
    starts_on: _Starts = None
    ends_on: _Ends = None
    capacity: _Capacity = None
    tags: _Tags = []

    _dates = not_before("starts_on", "ends_on")


class CourseUpdate(LmsModel, schema_name="lms.course.update"):
    """Changes to a course; absent fields stay as they are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "published"}]})

    title: _Title | None = None
    summary: _Summary = None
    language: LocaleCode | None = None
    status: CourseStatus | None = None
    starts_on: _Starts = None
    ends_on: _Ends = None
    capacity: _Capacity = None
    tags: _Tags | None = None

    _dates = not_before("starts_on", "ends_on")


class Course(Resource, schema_name="lms.course"):
    """A course, optionally with its outline (modules and their lessons)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**_STORED, **_COURSE, "status": "published", "modules": []}]
        }
    )

    organization_id: UUID = Field(description="the organization that teaches it")
    slug: Slug = Field(description="unique within the organization, used in URLs")
    title: _Title
    summary: _Summary = None
    language: LocaleCode = Field(description="teaching language (BCP 47)")
    status: CourseStatus = Field(description="draft, published or archived")
    starts_on: _Starts = None
    ends_on: _Ends = None
    capacity: _Capacity = None
    tags: _Tags = []
    modules: list[Module] = Field(default=[], max_length=100, description="modules, in order")

    _dates = not_before("starts_on", "ends_on")
