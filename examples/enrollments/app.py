"""The enrollments service's app: ``uvicorn examples.enrollments.app:app``.

Enrolling asks identity whether the user exists and is a student, and
courses whether the course exists and is published, over HTTP through the
chassis' client (``service.client``: discovery, retries, breakers, the
caller's deadline), with this service's own service token. ``POST /v1/enrollments`` honours
``Idempotency-Key`` (a retry gets the first response back, marked
``Idempotent-Replayed: true``), kept in the service's database. What it
heard of courses, its dead letters and (outside production) an outage
drill are in :mod:`examples.enrollments.events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse

from examples.access import trust_identity
from examples.events import EnrollmentCreated
from examples.persistence import LIST_PROBLEMS
from examples.upstream import CourseView, UserView, upstream
from lms_shared import Conflict, NotFound, Service, Settings, create_service
from lms_shared.auth import PermissionDenied, Principal, can
from lms_shared.client.trace_harness import install_trace_harness
from lms_shared.db import ListQuery, SqlIdempotencyStore
from lms_shared.http import (
    Idempotency,
    IdempotentRequest,
    Page,
    page_params,
    rate_limited,
    require,
)
from lms_shared.http.query import list_query
from lms_shared.models import Id, PageParams

from .events import course_routers, listen_to_courses
from .models import COURSE_NOT_PUBLISHED, NOT_A_STUDENT, PROBLEMS, Enrollment, EnrollmentCreate
from .store import ENROLLMENTS, EnrollmentStore
from .tables import IDEMPOTENCY_KEYS, Base, EnrollmentRow

__all__ = ["MIGRATIONS", "app", "build_service", "service"]

VERSION = "0.1.0"
MIGRATIONS = Path(__file__).with_name("migrations")
Paging = Annotated[PageParams, Depends(page_params)]
EnrollmentQuery = Annotated[ListQuery[EnrollmentRow], Depends(list_query(ENROLLMENTS))]


def build_service(
    *,
    settings: Settings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> Service:
    """Build the enrollments service on its database (``LMS_DATABASE_*`` settings).

    Its table comes from the revisions in :data:`MIGRATIONS` (applied at
    start-up with ``LMS_DATABASE_MIGRATE_ON_START=true``, which the demo sets).

    Args:
        settings: explicit settings; read from ``LMS_*`` when omitted.
        transports: per upstream (``identity``, ``courses``), an httpx
            transport to use instead of the network (tests).
    """
    service = create_service(
        "enrollments",
        VERSION,
        problems=PROBLEMS,
        settings=settings,
        title="Enrollments service",
        description="Students enrolled in published courses.",
    )
    if service.settings.env != "production":  # the W3C Trace Context harness drives POST /test
        install_trace_harness(service)
    transports = transports or {}
    trust_identity(service, transports.get("identity"))
    identity = upstream(service, "identity", transports)
    courses = upstream(service, "courses", transports)
    service.db.use_migrations(MIGRATIONS, metadata=Base.metadata)
    service.events.publishes(EnrollmentCreated)
    store = EnrollmentStore(service.db, service.clock, service.events)
    intake = listen_to_courses(service)  # published courses, heard through events
    idempotency = Idempotency(
        SqlIdempotencyStore(service.db, table=IDEMPOTENCY_KEYS),
        clock=service.clock,
        scope=_caller,  # one caller's key never replays another caller's response
    )
    v1 = service.api(1, tags=["enrollments"])

    @v1.post(
        "/enrollments",
        status_code=201,
        responses={
            404: {"description": "the user or the course does not exist"},
            409: {
                "description": "not-a-student, course-not-published, another organization,"
                " already-enrolled, or idempotency-in-flight"
            },
            422: {"description": "validation-error, or idempotency-key-reused"},
        },
        response_model=Enrollment,
        # per caller (its principal), whichever order FastAPI resolves it in
        dependencies=[rate_limited("60/minute", name="enroll")],
    )
    async def enroll(
        body: EnrollmentCreate,
        who: Principal = require("enrollment:create"),
        request: IdempotentRequest = Depends(idempotency),  # after require: scoped by caller
    ) -> Response:
        """Enroll a student in a published course of the same organization.

        Students may enroll themselves only; admins (``enrollment:write``) anyone.
        With an ``Idempotency-Key`` header, a retry (same key, same body) gets
        the first response back instead of enrolling again.
        """
        if not can(who, "enrollment:write") and str(body.user_id) != who.subject:
            raise PermissionDenied("enrollment:write", "students may enroll themselves only")

        async def create() -> Response:
            enrollment = await enroll_checked(body)
            return JSONResponse(
                enrollment.model_dump(mode="json"),
                status_code=201,
                headers={"location": f"/v1/enrollments/{enrollment.id}"},
            )

        return await request.run(create, status_code=201)

    async def enroll_checked(body: EnrollmentCreate) -> Enrollment:
        """Ask identity and courses, then record the enrollment."""
        try:
            user = await identity.get_json(f"/v1/users/{body.user_id}", model=UserView)
        except NotFound:
            raise NotFound(f"user {body.user_id} does not exist") from None
        if user.role != "student":
            raise Conflict(f"user {body.user_id} is {user.role}, not a student", code=NOT_A_STUDENT)
        try:
            course = await courses.get_json(f"/v1/courses/{body.course_id}", model=CourseView)
        except NotFound:
            raise NotFound(f"course {body.course_id} does not exist") from None
        if course.status != "published":
            raise Conflict(
                f"course {course.code} is a draft; publish it before enrolling students",
                code=COURSE_NOT_PUBLISHED,
            )
        if course.organization_id != user.organization_id:
            raise Conflict(f"user {body.user_id} belongs to another organization")
        return await store.enroll(body)

    @v1.get("/enrollments", responses=LIST_PROBLEMS)
    async def list_enrollments(
        request: Request,
        paging: Paging,
        query: EnrollmentQuery,
        _: Principal = require("enrollment:read"),
    ) -> Page[Enrollment]:
        """List enrollments (dropped ones excepted), a page at a time.

        Filters: `course_id` and `user_id` (`eq`, `in`), `status` (`eq`),
        `enrolled_at` (`gte`, `lt`: `?enrolled_at[gte]=2026-09-01T00:00:00Z`).
        Sort (`?sort=-enrolled_at`): `enrolled_at` (default).
        """
        items, cursor = await store.enrollments(query, paging)
        return Page[Enrollment].build(items, cursor, request)

    @v1.get("/enrollments/{enrollment_id}")
    async def get_enrollment(
        enrollment_id: Id, _: Principal = require("enrollment:read")
    ) -> Enrollment:
        """Get one enrollment."""
        return await store.enrollment(enrollment_id)

    @v1.post(
        "/enrollments/{enrollment_id}/withdraw",
        responses={409: {"description": "already withdrawn"}},
    )
    async def withdraw(enrollment_id: Id, _: Principal = require("enrollment:write")) -> Enrollment:
        """Withdraw an active enrollment."""
        return await store.withdraw(enrollment_id)

    @v1.delete(
        "/enrollments/{enrollment_id}",
        status_code=204,
        responses={404: {"description": "no such enrollment, or already dropped"}},
    )
    async def drop(enrollment_id: Id, _: Principal = require("enrollment:write")) -> None:
        """Drop an enrollment made by mistake.

        Unlike withdrawing, which keeps the enrollment on the record, a
        dropped enrollment disappears from every read and list (it stays in
        the database, soft-deleted), and the student may enroll again.
        """
        await store.drop(enrollment_id)

    service.include(v1, *course_routers(service, intake))  # + dead letters, the drill
    return service


def _caller(request: Request) -> str:
    """The idempotency scope: the verified caller (``require`` ran first)."""
    who = getattr(request.state, "principal", None)
    return f"{who.kind}:{who.subject}" if isinstance(who, Principal) else "anonymous"


service = build_service()
app = service.app
