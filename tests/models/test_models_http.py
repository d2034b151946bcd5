"""Bad input over HTTP: each case answers with the exact RFC 9457 problem.

A tiny courses service built on the public API, the way a service author
uses DTOs, merge patches, ETag/If-Match, Idempotency-Key and ``?fields=``.
"""

# no "from __future__ import annotations": the routes below are closures whose
# annotations FastAPI must evaluate (they name local dependencies)

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import Depends, Request, Response

from lms_shared import NotFound, Service
from lms_shared.http import (
    FieldSet,
    Idempotency,
    IdempotentRequest,
    IfMatch,
    MergePatch,
    Precondition,
    SparseFields,
    set_etag,
)
from lms_shared.models import (
    MERGE_PATCH_CONTENT_TYPE,
    Assignment,
    AssignmentCreate,
    Course,
    CourseCreate,
    CourseUpdate,
    Enrollment,
    EnrollmentStatus,
    EnrollmentUpdate,
    MemoryIdempotencyStore,
    UserCreate,
    apply_merge_patch,
    transition,
    validate,
)
from lms_shared.models.codecs import codec_for
from lms_shared.testing import EnrollmentFactory, ManualClock, service_client

BASE = "https://lms.example.org/problems/"
ORG = "0b7c2a4e-5d2f-4c1b-9a53-6f0e1d2c3b4a"
COURSE = {"organization_id": ORG, "slug": "stats", "title": "Statistics", "tags": ["year-1"]}


class Platform:
    """The service under test and its in-memory state."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.clock = ManualClock()
        self.courses: dict[UUID, Course] = {}
        self.enrollments: dict[UUID, Enrollment] = {}
        self.runs = 0
        self.gate: asyncio.Event | None = None
        self.idempotency = Idempotency(MemoryIdempotencyStore(), clock=self.clock)
        self.required_key = Idempotency(self.idempotency.store, clock=self.clock, required=True)


@pytest.fixture
def platform(make_service: Callable[..., Service]) -> Platform:
    service = make_service()
    p = Platform(service)
    v1 = service.api(1)
    course_fields = SparseFields(Course, always={"id"})
    if_match = IfMatch()

    async def create_course(body: CourseCreate) -> Course:
        p.runs += 1
        if p.gate is not None:
            await p.gate.wait()
        now = p.clock.now()
        course = Course(
            id=uuid4(), version=1, created_at=now, updated_at=now, status="draft", **dict(body)
        )
        p.courses[course.id] = course
        return course

    @v1.post("/courses", status_code=201, response_model=Course)
    async def post_course(
        body: CourseCreate, request: Annotated[IdempotentRequest, Depends(p.idempotency)]
    ) -> Response:
        return await request.run(lambda: create_course(body), status_code=201)

    @v1.post("/strict/courses", status_code=201, response_model=Course)
    async def post_course_strictly(
        body: CourseCreate, request: Annotated[IdempotentRequest, Depends(p.required_key)]
    ) -> Response:
        return await request.run(lambda: create_course(body), status_code=201)

    @v1.get("/courses/{course_id}", response_model=Course)
    async def get_course(
        course_id: UUID, fields: Annotated[FieldSet, Depends(course_fields)]
    ) -> Response:
        course = p.courses.get(course_id)
        if course is None:
            raise NotFound(f"course {course_id} does not exist")
        response = fields.response(course)
        set_etag(response, course.version)
        return response

    @v1.patch("/courses/{course_id}")
    async def patch_course(
        course_id: UUID,
        patch: MergePatch,
        response: Response,
        precondition: Annotated[Precondition, Depends(if_match)],
    ) -> Course:
        current = p.courses[course_id]
        precondition.check(current.version)
        changed = apply_merge_patch(current, patch, CourseUpdate).model_copy(
            update={"version": current.version + 1, "updated_at": p.clock.now()}
        )
        p.courses[course_id] = changed
        set_etag(response, changed.version)
        return changed

    @v1.post("/enrollments/{enrollment_id}/status")
    async def change_status(enrollment_id: UUID, body: EnrollmentUpdate) -> Enrollment:
        current = p.enrollments[enrollment_id]
        changed = transition(current, body.status or current.status, at=p.clock.now())
        p.enrollments[enrollment_id] = changed
        return changed

    @v1.post("/assignments", status_code=201)
    async def post_assignment(body: AssignmentCreate) -> dict[str, Any]:
        return body.model_dump(mode="json")

    @v1.post("/users/import", status_code=202)
    async def import_user(request: Request) -> dict[str, str]:
        codec = codec_for(request.headers.get("content-type"))
        user = codec.decode(await request.body(), UserCreate)
        return {"email_domain": user.email.split("@")[1]}

    @v1.post("/users/check")
    async def check_user(request: Request) -> dict[str, bool]:
        validate(UserCreate, await request.json())
        return {"valid": True}

    service.include(v1)
    return p


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with service_client(platform.service) as client:
        yield client


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"]
    return body


def expected(slug: str, status: int, title: str, detail: str, instance: str) -> dict[str, Any]:
    return {
        "type": BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": slug,
    }


def invalid(instance: str, *errors: tuple[str, str, str]) -> dict[str, Any]:
    count = len(errors)
    body = expected(
        "validation-error",
        422,
        "Request validation failed",
        f"{count} invalid field{'s' if count != 1 else ''}",
        instance,
    )
    body["errors"] = [{"pointer": p, "detail": d, "type": t} for p, d, t in errors]
    return body


async def make_course(client: httpx.AsyncClient) -> dict[str, Any]:
    created = await client.post("/v1/courses", json=COURSE)
    assert created.status_code == 201, created.text
    return dict(created.json())


# --- bad input: validation -------------------------------------------------------


async def test_naive_datetime(client: httpx.AsyncClient) -> None:
    body = {"course_id": str(uuid4()), "title": "PS1", "due_at": "2026-03-16T23:59:59"}
    response = await client.post("/v1/assignments", json={**body, "max_score": 10})
    assert problem(response, 422) == invalid(
        "/v1/assignments", ("#/due_at", "Input should have timezone info", "timezone_aware")
    )
    fine = await client.post(
        "/v1/assignments", json={**body, "due_at": "2026-03-17T00:59:59+01:00", "max_score": 10}
    )
    assert fine.json()["due_at"] == "2026-03-16T23:59:59Z"
    assert Assignment.model_fields["due_at"].annotation is not None


async def test_unknown_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/courses", json={**COURSE, "is_featured": True})
    assert problem(response, 422) == invalid(
        "/v1/courses", ("#/is_featured", "Extra inputs are not permitted", "extra_forbidden")
    )


async def test_oversized_string_and_list(client: httpx.AsyncClient) -> None:
    tags = [f"tag-{i}" for i in range(21)]
    response = await client.post("/v1/courses", json={**COURSE, "title": "x" * 201, "tags": tags})
    assert problem(response, 422) == invalid(
        "/v1/courses",
        ("#/title", "String should have at most 200 characters", "string_too_long"),
        ("#/tags", "List should have at most 20 items after validation, not 21", "too_long"),
    )


async def test_wrong_enum_value(client: httpx.AsyncClient) -> None:
    course = await make_course(client)
    response = await client.patch(
        f"/v1/courses/{course['id']}",
        json={"status": "deleted"},
        headers={"If-Match": '"1"', "content-type": MERGE_PATCH_CONTENT_TYPE},
    )
    assert problem(response, 422) == invalid(
        f"/v1/courses/{course['id']}",
        ("#/status", "Input should be 'draft', 'published' or 'archived'", "enum"),
    )


async def test_validation_in_service_code_is_the_same_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/users/check", json={"organization_id": ORG})
    assert problem(response, 422) == invalid(
        "/v1/users/check",
        ("#/email", "Field required", "missing"),
        ("#/given_name", "Field required", "missing"),
        ("#/family_name", "Field required", "missing"),
    )


async def test_codecs_over_http(client: httpx.AsyncClient) -> None:
    import ormsgpack

    user = {"organization_id": ORG, "email": "a@example.org", "given_name": "A", "family_name": "B"}
    packed = ormsgpack.packb(user)
    ok = await client.post(
        "/v1/users/import", content=packed, headers={"content-type": "application/msgpack"}
    )
    assert ok.json() == {"email_domain": "example.org"}
    garbage = await client.post(
        "/v1/users/import", content=b"\xc1", headers={"content-type": "application/msgpack"}
    )
    assert problem(garbage, 400) == expected(
        "malformed-payload",
        400,
        "Malformed payload",
        "not valid MessagePack: invalid type Reserved",
        "/v1/users/import",
    )


# --- bad input: lifecycle and patches --------------------------------------------


async def test_illegal_status_transition(platform: Platform, client: httpx.AsyncClient) -> None:
    enrollment = EnrollmentFactory.build(status=EnrollmentStatus.INVITED, completed_at=None)
    platform.enrollments[enrollment.id] = enrollment
    url = f"/v1/enrollments/{enrollment.id}/status"
    response = await client.post(url, json={"status": "completed"})
    assert problem(response, 409) == {
        **expected(
            "illegal-transition",
            409,
            "Illegal status transition",
            "an enrollment cannot go from 'invited' to 'completed'; allowed: active",
            url,
        ),
        "current": "invited",
        "requested": "completed",
        "allowed": ["active"],
    }
    ok = await client.post(url, json={"status": "active"})
    assert ok.json()["status"] == "active"


@pytest.mark.parametrize(
    ("content", "slug", "status", "title", "detail"),
    [
        (
            b"[1]",
            "malformed-patch",
            400,
            "Malformed merge patch",
            "a merge patch must be a JSON object, got an array",
        ),
        (b'{"title": ', "malformed-json", 400, "Malformed JSON body", None),
    ],
)
async def test_malformed_merge_patch(
    client: httpx.AsyncClient,
    content: bytes,
    slug: str,
    status: int,
    title: str,
    detail: str | None,
) -> None:
    course = await make_course(client)
    url = f"/v1/courses/{course['id']}"
    response = await client.patch(
        url, content=content, headers={"If-Match": '"1"', "content-type": MERGE_PATCH_CONTENT_TYPE}
    )
    body = problem(response, status)
    if detail is None:
        detail = body["detail"]
        assert detail.startswith("Expecting value")
    assert body == expected(slug, status, title, detail, url)


async def test_merge_patch_of_read_only_field(client: httpx.AsyncClient) -> None:
    course = await make_course(client)
    url = f"/v1/courses/{course['id']}"
    response = await client.patch(url, json={"version": 7}, headers={"If-Match": '"1"'})
    assert problem(response, 422) == invalid(
        url, ("#/version", "Extra inputs are not permitted", "extra_forbidden")
    )


# --- optimistic concurrency --------------------------------------------------------


async def test_etag_round_trip_and_stale_if_match(client: httpx.AsyncClient) -> None:
    course = await make_course(client)
    url = f"/v1/courses/{course['id']}"
    read = await client.get(url)
    assert read.headers["etag"] == '"1"'
    headers = {"If-Match": read.headers["etag"], "content-type": MERGE_PATCH_CONTENT_TYPE}
    first = await client.patch(url, content=b'{"title": "Statistics I"}', headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"2"'
    assert (first.json()["title"], first.json()["version"]) == ("Statistics I", 2)
    stale = await client.patch(url, content=b'{"title": "Lost update"}', headers=headers)
    assert stale.headers["etag"] == '"2"'
    assert problem(stale, 412) == expected(
        "precondition-failed",
        412,
        "Precondition failed",
        'the resource changed: If-Match "1" does not match the current ETag "2"; '
        "read it again and retry",
        url,
    )
    assert (await client.get(url)).json()["title"] == "Statistics I"


async def test_missing_if_match(client: httpx.AsyncClient) -> None:
    course = await make_course(client)
    url = f"/v1/courses/{course['id']}"
    response = await client.patch(url, json={"title": "No precondition"})
    assert problem(response, 428) == expected(
        "precondition-required",
        428,
        "Precondition required",
        "this update needs an If-Match header with the resource's ETag; read the resource first",
        url,
    )


# --- idempotency keys --------------------------------------------------------------


async def test_a_retry_replays_the_first_response(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    headers = {"Idempotency-Key": "2b1f0c1e-9d7a-4a51-8f3e-2c6b1d0e9f8a"}
    first = await client.post("/v1/courses", json=COURSE, headers=headers)
    reordered = {key: COURSE[key] for key in reversed(COURSE)}
    retry = await client.post("/v1/courses", json=reordered, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.content == first.content
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert platform.runs == 1
    assert len(platform.courses) == 1
    other = await client.post("/v1/courses", json=COURSE, headers={"Idempotency-Key": "other"})
    assert other.json()["id"] != first.json()["id"]
    assert platform.runs == 2


async def test_reused_key_with_another_body(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "key-1"}
    assert (await client.post("/v1/courses", json=COURSE, headers=headers)).status_code == 201
    response = await client.post(
        "/v1/courses", json={**COURSE, "title": "Another course"}, headers=headers
    )
    assert problem(response, 422) == expected(
        "idempotency-key-reused",
        422,
        "Idempotency-Key reused with another request",
        "this Idempotency-Key was already used with a different request body; "
        "use a new key for a new operation",
        "/v1/courses",
    )


async def test_concurrent_duplicate_is_in_flight(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    platform.gate = asyncio.Event()
    headers = {"Idempotency-Key": "key-2"}
    first = asyncio.create_task(client.post("/v1/courses", json=COURSE, headers=headers))
    while platform.runs == 0:
        await asyncio.sleep(0)
    duplicate = await client.post("/v1/courses", json=COURSE, headers=headers)
    assert duplicate.headers["retry-after"] == "60"
    assert problem(duplicate, 409) == expected(
        "idempotency-in-flight",
        409,
        "A request with this Idempotency-Key is in progress",
        "a request with this Idempotency-Key is still being processed; retry later",
        "/v1/courses",
    )
    platform.gate.set()
    assert (await first).status_code == 201
    replay = await client.post("/v1/courses", json=COURSE, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"


async def test_a_failed_request_can_be_retried(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    headers = {"Idempotency-Key": "key-3"}
    bad = {**COURSE, "organization_id": "not-a-uuid"}
    assert (await client.post("/v1/courses", json=bad, headers=headers)).status_code == 422
    assert (await client.post("/v1/courses", json=COURSE, headers=headers)).status_code == 201


@pytest.mark.parametrize(
    ("path", "headers", "detail"),
    [
        (
            "/v1/courses",
            {"Idempotency-Key": "has space"},
            "an Idempotency-Key is 1-255 visible ASCII characters (a UUID)",
        ),
        (
            "/v1/courses",
            {"Idempotency-Key": "k" * 256},
            "an Idempotency-Key is 1-255 visible ASCII characters (a UUID)",
        ),
        ("/v1/strict/courses", {}, "this operation needs an Idempotency-Key header"),
    ],
)
async def test_missing_or_malformed_key(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], detail: str
) -> None:
    response = await client.post(path, json=COURSE, headers=headers)
    assert problem(response, 400) == expected(
        "invalid-idempotency-key", 400, "Missing or invalid Idempotency-Key", detail, path
    )
    quoted = await client.post(path, json=COURSE, headers={"Idempotency-Key": '"sf-string"'})
    assert quoted.status_code == 201


# --- sparse fieldsets ----------------------------------------------------------------


async def test_sparse_fields(client: httpx.AsyncClient) -> None:
    course = await make_course(client)
    url = f"/v1/courses/{course['id']}"
    picked = await client.get(url, params={"fields": "title,status"})
    assert picked.json() == {"id": course["id"], "title": "Statistics", "status": "draft"}
    response = await client.get(url, params={"fields": "title,secret_notes"})
    allowed = ", ".join(sorted(Course.model_fields))
    assert problem(response, 400) == {
        **expected(
            "unknown-field",
            400,
            "Unknown field requested",
            f"unknown field 'secret_notes' in ?fields=; allowed: {allowed}",
            url,
        ),
        "parameter": "fields",
        "fields": ["secret_notes"],
    }


async def test_openapi_documents_the_patterns(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    patch = doc["paths"]["/v1/courses/{course_id}"]["patch"]
    assert MERGE_PATCH_CONTENT_TYPE in patch["requestBody"]["content"]
    names = {p["name"] for p in patch["parameters"]}
    assert "If-Match" in names
    post = doc["paths"]["/v1/courses"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"]}
    get = doc["paths"]["/v1/courses/{course_id}"]["get"]
    assert "fields" in {p["name"] for p in get["parameters"]}
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Course"
    }
