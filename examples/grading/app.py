"""The grading service's app: ``uvicorn examples.grading.app:app``.

A submission is accepted only under an active enrollment, which grading
checks with the enrollments service over HTTP, with this service's own
service token. Students hand in work (under their own enrollment only);
instructors grade it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import Depends, Request, Response

from examples.access import trust_identity
from examples.persistence import LIST_PROBLEMS
from examples.upstream import EnrollmentView, upstream
from lms_shared import Conflict, NotFound, Service, Settings, create_service
from lms_shared.auth import PermissionDenied, Principal, can
from lms_shared.client.trace_harness import install_trace_harness
from lms_shared.db import ListQuery
from lms_shared.http import Page, page_params, require
from lms_shared.http.query import list_query
from lms_shared.models import Id, PageParams

from .events import open_gradebooks
from .gradebook import Gradebooks, GradebookView
from .models import ENROLLMENT_INACTIVE, PROBLEMS, Grade, GradeCreate, Submission, SubmissionCreate
from .store import SUBMISSIONS, GradingStore
from .tables import Base, SubmissionRow

__all__ = ["MIGRATIONS", "app", "build_service", "service"]

VERSION = "0.1.0"
MIGRATIONS = Path(__file__).with_name("migrations")
Paging = Annotated[PageParams, Depends(page_params)]
SubmissionQuery = Annotated[ListQuery[SubmissionRow], Depends(list_query(SUBMISSIONS))]


def build_service(
    *,
    settings: Settings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> Service:
    """Build the grading service on its database (``LMS_DATABASE_*`` settings).

    Its tables come from the revisions in :data:`MIGRATIONS` (applied at
    start-up with ``LMS_DATABASE_MIGRATE_ON_START=true``, which the demo sets).

    Args:
        settings: explicit settings; read from ``LMS_*`` when omitted.
        transports: per upstream (``enrollments``; ``identity`` for its
            JWKS and service tokens), an httpx transport to use instead of
            the network (tests).
    """
    service = create_service(
        "grading",
        VERSION,
        problems=PROBLEMS,
        settings=settings,
        title="Grading service",
        description="Submissions of enrolled students and their grades.",
    )
    if service.settings.env != "production":  # the W3C Trace Context harness drives POST /test
        install_trace_harness(service)
    transports = transports or {}
    trust_identity(service, transports.get("identity"))
    enrollments = upstream(service, "enrollments", transports)
    service.db.use_migrations(MIGRATIONS, metadata=Base.metadata)
    gradebooks = Gradebooks(service.db, service.clock)
    open_gradebooks(service, gradebooks)  # new enrollments, heard through events
    store = GradingStore(service.db, service.clock, gradebooks)
    v1 = service.api(1, tags=["grading"])

    @v1.post(
        "/submissions",
        status_code=201,
        responses={
            404: {"description": "the enrollment does not exist"},
            409: {"description": "enrollment-inactive, or the assignment was already submitted"},
        },
    )
    async def submit(
        body: SubmissionCreate, response: Response, who: Principal = require("submission:write")
    ) -> Submission:
        """Hand in an assignment under an active enrollment (a student: their own)."""
        try:
            enrollment = await enrollments.get_json(
                f"/v1/enrollments/{body.enrollment_id}", model=EnrollmentView
            )
        except NotFound:
            raise NotFound(f"enrollment {body.enrollment_id} does not exist") from None
        if not can(who, "grade:write") and str(enrollment.user_id) != who.subject:
            raise PermissionDenied("submission:write", "students hand in their own work only")
        if enrollment.status != "active":
            raise Conflict(
                f"enrollment {body.enrollment_id} is {enrollment.status}",
                code=ENROLLMENT_INACTIVE,
            )
        submission = await store.submit(
            body, course_id=enrollment.course_id, student_id=enrollment.user_id
        )
        response.headers["location"] = f"/v1/submissions/{submission.id}"
        return submission

    @v1.get("/submissions", responses=LIST_PROBLEMS)
    async def list_submissions(
        request: Request,
        paging: Paging,
        query: SubmissionQuery,
        _: Principal = require("submission:read"),
    ) -> Page[Submission]:
        """List submissions with their grades, a page at a time.

        Filters: `course_id`, `enrollment_id` (`eq`), `student_id` (`eq`, `in`),
        `assignment` (`eq`, `prefix`). Sort: `submitted_at` (default), `assignment`.
        """
        items, cursor = await store.submissions(query, paging)
        return Page[Submission].build(items, cursor, request)

    @v1.get("/submissions/{submission_id}")
    async def get_submission(
        submission_id: Id, _: Principal = require("submission:read")
    ) -> Submission:
        """Get one submission and its grade."""
        return await store.submission(submission_id)

    @v1.post(
        "/submissions/{submission_id}/grade",
        status_code=201,
        responses={409: {"description": "already-graded"}},
    )
    async def grade(
        submission_id: Id, body: GradeCreate, _: Principal = require("grade:write")
    ) -> Grade:
        """Record the grade of a submission (once)."""
        return await store.grade(submission_id, body)

    @v1.get("/gradebooks/{enrollment_id}", responses={404: {"description": "never opened"}})
    async def gradebook(
        enrollment_id: Id, _: Principal = require("submission:read")
    ) -> GradebookView:
        """An enrollment's gradebook: the fold of its events (event sourced)."""
        found = await gradebooks.view(enrollment_id)
        if found is None:
            raise NotFound(f"enrollment {enrollment_id} has no gradebook")
        return found

    service.include(v1)
    return service


service = build_service()
app = service.app
