"""The courses service's app: ``uvicorn examples.courses.app:app``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request, Response

from lms_shared import Service, Settings, create_service
from lms_shared.http import Deprecation, Page, PageParams, page_params

from .models import Course, CourseCreate, CourseStatus, Lesson, LessonCreate, Module, ModuleCreate
from .store import CourseStore

__all__ = ["FLAT_LESSONS_DEPRECATION", "app", "build_service", "service"]

VERSION = "0.1.0"
Paging = Annotated[PageParams, Depends(page_params)]

FLAT_LESSONS_DEPRECATION = Deprecation(
    at=datetime(2026, 1, 1, tzinfo=UTC),
    sunset=datetime(2026, 12, 31, tzinfo=UTC),
    link="https://lms.example.org/docs/migrations/course-outline",
)


def build_service(*, settings: Settings | None = None) -> Service:
    """Build the courses service with a fresh, empty store."""
    service = create_service(
        "courses",
        VERSION,
        settings=settings,
        title="Courses service",
        description="Courses, their modules and lessons, and publishing.",
    )
    store = CourseStore(service.clock)
    v1 = service.api(1, tags=["courses"])

    @v1.post(
        "/courses",
        status_code=201,
        responses={409: {"description": "the organization already has a course with that code"}},
    )
    async def create_course(body: CourseCreate, response: Response) -> Course:
        """Create a draft course."""
        course = await store.add_course(body)
        response.headers["location"] = f"/v1/courses/{course.id}"
        return course

    @v1.get("/courses")
    async def list_courses(
        request: Request,
        paging: Paging,
        status: CourseStatus | None = None,
        organization_id: UUID | None = None,
    ) -> Page[Course]:
        """List courses, optionally by status or organization, a page at a time."""
        items, cursor = await store.courses(paging, status=status, organization_id=organization_id)
        return Page[Course].build(items, cursor, request)

    @v1.get("/courses/{course_id}")
    async def get_course(course_id: UUID) -> Course:
        """Get one course with its outline (modules and lessons)."""
        return await store.course(course_id)

    @v1.post("/courses/{course_id}/modules", status_code=201)
    async def create_module(course_id: UUID, body: ModuleCreate) -> Module:
        """Append a module to a course."""
        return await store.add_module(course_id, body)

    @v1.post("/courses/{course_id}/modules/{module_id}/lessons", status_code=201)
    async def create_lesson(course_id: UUID, module_id: UUID, body: LessonCreate) -> Lesson:
        """Append a lesson to a module."""
        return await store.add_lesson(course_id, module_id, body)

    @v1.post(
        "/courses/{course_id}/publish",
        responses={409: {"description": "already published, or no lesson yet (course-not-ready)"}},
    )
    async def publish_course(course_id: UUID) -> Course:
        """Publish a draft course; it needs at least one lesson."""
        return await store.publish(course_id)

    @v1.get("/courses/{course_id}/lessons")
    async def list_lessons(course_id: UUID) -> list[Lesson]:
        """Every lesson of a course, flattened. Deprecated: read the course's modules."""
        course = await store.course(course_id)
        return [lesson for module in course.modules for lesson in module.lessons]

    service.include(v1)
    service.deprecate("/v1/courses/{course_id}/lessons", FLAT_LESSONS_DEPRECATION)
    return service


service = build_service()
app = service.app
