"""The courses service's app: ``uvicorn examples.courses.app:app``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import Depends, Request, Response

from examples.access import trust_identity
from examples.events import CoursePublished
from examples.persistence import LIST_PROBLEMS
from lms_shared import Service, Settings, create_service
from lms_shared.auth import Principal
from lms_shared.client.trace_harness import install_trace_harness
from lms_shared.db import ListQuery
from lms_shared.http import (
    Deprecation,
    IfMatch,
    MergePatch,
    Page,
    Precondition,
    page_params,
    require,
    set_etag,
)
from lms_shared.http.query import list_query
from lms_shared.models import Id, PageParams

from .models import PROBLEMS, Course, CourseCreate, Lesson, LessonCreate, Module, ModuleCreate
from .store import COURSES, CourseStore
from .tables import Base, CourseRow

__all__ = ["FLAT_LESSONS_DEPRECATION", "MIGRATIONS", "app", "build_service", "service"]

VERSION = "0.1.0"
MIGRATIONS = Path(__file__).with_name("migrations")
Paging = Annotated[PageParams, Depends(page_params)]
CourseQuery = Annotated[ListQuery[CourseRow], Depends(list_query(COURSES))]
IF_MATCH = IfMatch()  # PATCH needs If-Match: 428 without, 412 when stale

FLAT_LESSONS_DEPRECATION = Deprecation(
    at=datetime(2026, 1, 1, tzinfo=UTC),
    sunset=datetime(2026, 12, 31, tzinfo=UTC),
    link="https://lms.example.org/docs/migrations/course-outline",
)


def build_service(
    *,
    settings: Settings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> Service:
    """Build the courses service on its database (``LMS_DATABASE_*`` settings).

    Its tables come from the revisions in :data:`MIGRATIONS`: applied at
    start-up with ``LMS_DATABASE_MIGRATE_ON_START=true`` (the demo sets it),
    or beforehand with ``lms-shared db upgrade --service examples.courses.app``.

    Args:
        settings: explicit settings; read from ``LMS_*`` when omitted.
        transports: per upstream (``identity``: its JWKS), an httpx
            transport to use instead of the network (tests).
    """
    service = create_service(
        "courses",
        VERSION,
        problems=PROBLEMS,
        settings=settings,
        title="Courses service",
        description="Courses, their modules and lessons, and publishing.",
    )
    if service.settings.env != "production":  # the W3C Trace Context harness drives POST /test
        install_trace_harness(service)
    trust_identity(service, (transports or {}).get("identity"))
    service.db.use_migrations(MIGRATIONS, metadata=Base.metadata)
    service.events.publishes(CoursePublished)
    service.events.use_database(service.db)  # outbox, inbox and dead letters in its tables
    store = CourseStore(service.db, service.clock, events=service.events)
    v1 = service.api(1, tags=["courses"])

    @v1.post(
        "/courses",
        status_code=201,
        responses={409: {"description": "the organization already has a course with that code"}},
    )
    async def create_course(
        body: CourseCreate, response: Response, _: Principal = require("course:write")
    ) -> Course:
        """Create a draft course."""
        course = await store.add_course(body)
        response.headers["location"] = f"/v1/courses/{course.id}"
        return course

    @v1.get("/courses", responses=LIST_PROBLEMS)
    async def list_courses(
        request: Request,
        paging: Paging,
        query: CourseQuery,
        _: Principal = require("course:read"),
    ) -> Page[Course]:
        """List courses with their outlines, a page at a time.

        Filters: `status` (`eq`), `organization_id` (`eq`, `in`), `instructor_id`
        (`eq`), `code` (`eq`, `prefix`: `?code[prefix]=CS`), `title` (`icontains`).
        Sort (`?sort=code,-created_at`): `created_at` (default), `code`, `title`.
        """
        items, cursor = await store.courses(query, paging)
        return Page[Course].build(items, cursor, request)

    @v1.get("/courses/{course_id}")
    async def get_course(
        course_id: Id, response: Response, _: Principal = require("course:read")
    ) -> Course:
        """Get one course with its outline (modules and lessons); its version is the ETag."""
        course = await store.course(course_id)
        set_etag(response, course.version)
        return course

    @v1.patch(
        "/courses/{course_id}",
        responses={
            412: {"description": "If-Match is not the current ETag (precondition-failed)"},
            428: {"description": "If-Match is missing (precondition-required)"},
        },
    )
    async def patch_course(
        course_id: Id,
        patch: MergePatch,
        response: Response,
        _: Principal = require("course:write"),  # before If-Match: 401/403 come first
        precondition: Precondition = Depends(IF_MATCH),
    ) -> Course:
        """Change a course's title or description (JSON Merge Patch), given its current ETag."""
        course = await store.patch(course_id, patch, precondition)
        set_etag(response, course.version)
        return course

    @v1.post("/courses/{course_id}/modules", status_code=201)
    async def create_module(
        course_id: Id, body: ModuleCreate, _: Principal = require("course:write")
    ) -> Module:
        """Append a module to a course."""
        return await store.add_module(course_id, body)

    @v1.post("/courses/{course_id}/modules/{module_id}/lessons", status_code=201)
    async def create_lesson(
        course_id: Id,
        module_id: Id,
        body: LessonCreate,
        _: Principal = require("lesson:write"),
    ) -> Lesson:
        """Append a lesson to a module."""
        return await store.add_lesson(course_id, module_id, body)

    @v1.post(
        "/courses/{course_id}/publish",
        responses={409: {"description": "already published, or no lesson yet (course-not-ready)"}},
    )
    async def publish_course(course_id: Id, _: Principal = require("course:publish")) -> Course:
        """Publish a draft course; it needs at least one lesson."""
        return await store.publish(course_id)

    @v1.get("/courses/{course_id}/lessons")
    async def list_lessons(course_id: Id, _: Principal = require("lesson:read")) -> list[Lesson]:
        """Every lesson of a course, flattened. Deprecated: read the course's modules."""
        course = await store.course(course_id)
        return [lesson for module in course.modules for lesson in module.lessons]

    service.include(v1)
    service.deprecate("/v1/courses/{course_id}/lessons", FLAT_LESSONS_DEPRECATION)
    return service


service = build_service()
app = service.app
