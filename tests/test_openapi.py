"""The OpenAPI 3.1 document and its shared components."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, Request
from pydantic import BaseModel

from lms_shared import Service, errors, load_settings
from lms_shared.http import Page, page_params, problem_responses
from lms_shared.models import PageParams
from lms_shared.testing import service_client


class Course(BaseModel):
    id: int
    title: str


ARCHIVED = errors.ErrorCode("course-archived", 404, "Course archived")


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    service = make_service()
    v1 = service.api(1, tags=["courses"])

    @v1.get("/courses", summary="List courses")
    async def list_courses(
        request: Request, params: Annotated[PageParams, Depends(page_params)]
    ) -> Page[Course]:
        return Page[Course].build([], None, request)

    @v1.post("/courses", status_code=201, responses={409: {"description": "title taken"}})
    async def create(course: Course) -> Course:
        return course

    @v1.get("/courses/{course_id}", responses=problem_responses(ARCHIVED, errors.NOT_FOUND))
    async def read(course_id: int) -> Course:
        return Course(id=course_id, title="x")

    service.include(v1)
    return service


@pytest.fixture
async def document(service: Service) -> dict[str, Any]:
    async with service_client(service) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_is_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    assert document["info"] == {"title": "courses service", "version": "1.0.0"}


def test_problem_schema_and_security_schemes(document: dict[str, Any]) -> None:
    components = document["components"]
    problem = components["schemas"]["Problem"]
    assert {"type", "title", "status", "code"} <= set(problem["required"])
    assert problem["examples"][0]["code"] == "not-found"
    assert components["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert components["securitySchemes"]["apiKeyAuth"]["name"] == "X-API-Key"
    assert "HTTPValidationError" not in components["schemas"]


def test_every_error_response_is_a_problem(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400 or (path.startswith("/health/") and status == "503"):
                    continue  # a failing probe answers with its health report
                content = response.get("content", {})
                assert list(content) == ["application/problem+json"], (path, method, status)
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def test_operations_list_the_errors_they_can_produce(document: dict[str, Any]) -> None:
    paths = document["paths"]
    create = paths["/v1/courses"]["post"]["responses"]
    assert {"201", "400", "409", "413", "415", "422", "500", "503", "504"} <= set(create)
    assert create["409"]["description"] == "title taken"
    assert create["409"]["content"]["application/problem+json"]["example"]["code"] == "conflict"
    read = paths["/v1/courses/{course_id}"]["get"]["responses"]
    assert "404" in read
    assert "413" not in read
    live = paths["/health/live"]["get"]["responses"]
    assert "422" not in live


def test_paging_envelope_is_documented(document: dict[str, Any]) -> None:
    ok = document["paths"]["/v1/courses"]["get"]["responses"]["200"]
    ref = ok["content"]["application/json"]["schema"]["$ref"]
    envelope = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(envelope["properties"]) == {"items", "next_cursor", "links"}
    parameters = {p["name"] for p in document["paths"]["/v1/courses"]["get"]["parameters"]}
    assert parameters == {"limit", "cursor"}


def test_document_is_cached_and_rebuilt_after_include(service: Service) -> None:
    first = service.app.openapi()
    assert service.app.openapi() is first
    v2 = service.api(2)

    @v2.get("/courses")
    async def list_v2() -> list[int]:
        return []

    service.include(v2)
    assert "/v2/courses" in service.app.openapi()["paths"]
    json.dumps(service.app.openapi())


async def test_docs_can_be_turned_off(make_service: Callable[..., Service]) -> None:
    service = make_service(docs_enabled=False)
    async with service_client(service) as client:
        assert (await client.get("/openapi.json")).status_code == 404
        assert (await client.get("/docs")).status_code == 404


async def test_swagger_ui_is_served(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text


def test_failing_probe_documents_its_report(document: dict[str, Any]) -> None:
    failing = document["paths"]["/health/ready"]["get"]["responses"]["503"]
    assert failing["content"]["application/json"]["schema"]["$ref"].endswith("HealthReport")


def test_route_declared_codes_keep_their_own_types(document: dict[str, Any]) -> None:
    missing = document["paths"]["/v1/courses/{course_id}"]["get"]["responses"]["404"]
    assert missing["description"] == "Course archived / Resource not found"
    examples = missing["content"]["application/problem+json"]["examples"]
    assert examples["course-archived"]["value"]["type"] == (
        "https://lms.example.org/problems/course-archived"
    )
    assert examples["not-found"]["value"]["code"] == "not-found"
    assert "lms-problem-base:" not in json.dumps(document)


def test_secured_operations_document_401_and_403(make_service: Callable[..., Service]) -> None:
    from lms_shared.auth import Principal
    from lms_shared.http import require

    service = make_service()

    @service.router.post("/v1/grades")
    async def grade(who: Principal = require("grade:write")) -> dict[str, str]:
        return {"by": who.subject}

    operation = service.app.openapi()["paths"]["/v1/grades"]["post"]
    assert operation["security"]
    for status, slug in (("401", "unauthorized"), ("403", "forbidden")):
        example = operation["responses"][status]["content"]["application/problem+json"]
        assert example["example"]["code"] == slug
    public = service.app.openapi()["paths"]["/health/live"]["get"]["responses"]
    assert "401" not in public


def test_optional_problem_members_are_absent_never_null(document: dict[str, Any]) -> None:
    # RFC 9457 §3: a member that does not apply is left out, so null is no valid value
    schemas = document["components"]["schemas"]
    for name in ("Problem", "FieldError"):
        for member, schema in schemas[name]["properties"].items():
            text = json.dumps(schema)
            assert '"null"' not in text, (name, member, schema)
            assert "default" not in schema or schema["default"] is not None, (name, member)


def test_list_filters_and_sort_are_documented_parameters(tmp_path: Path) -> None:
    from examples.enrollments.app import build_service

    service = build_service(settings=load_settings(state_dir=str(tmp_path)))
    operation = service.app.openapi()["paths"]["/v1/enrollments"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert {"status", "course_id", "course_id[in]", "enrolled_at[gte]", "sort"} <= set(params)
    assert all(params[name]["in"] == "query" for name in ("status", "course_id[in]", "sort"))
    assert not any(params[name]["required"] for name in ("status", "sort"))
    assert "one of (comma-separated)" in params["course_id[in]"]["description"]
    assert "enrolled_at" in params["sort"]["description"]
