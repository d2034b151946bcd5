"""Bad input over HTTP: each case asserts the exact problem response."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import BaseModel, Field

from lms_shared import (
    BadRequest,
    Conflict,
    NotFound,
    ProblemError,
    Service,
    create_service,
    errors,
    load_settings,
)
from lms_shared.testing import service_client

BASE = "https://lms.example.org/problems/"


class CourseIn(BaseModel):
    title: str = Field(min_length=1, max_length=20)
    credits: int = Field(ge=0)


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    service = make_service()
    v1 = service.api(1)

    @v1.post("/courses", status_code=201)
    async def create(body: CourseIn) -> CourseIn:
        return body

    @v1.get("/courses/{course_id}")
    async def read(course_id: int) -> dict[str, int]:
        if course_id == 404:
            raise NotFound(f"course {course_id} does not exist")
        if course_id == 409:
            raise Conflict("course is archived", headers={"Retry-After": "5"}, state="archived")
        return {"id": course_id}

    @v1.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    service.include(v1)
    return service


def problem(status: int, slug: str, title: str, detail: str, instance: str) -> dict[str, object]:
    return {
        "type": BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": slug,
    }


async def test_malformed_json(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.post(
            "/v1/courses", content=b'{"title": ', headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"]
    assert body == problem(
        400,
        "malformed-json",
        "Malformed JSON body",
        "Expecting value at position 10",
        "/v1/courses",
    )


async def test_wrong_content_type(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.post(
            "/v1/courses", content=b"title=x", headers={"content-type": "text/plain; charset=utf-8"}
        )
    assert response.status_code == 415
    body = response.json()
    body.pop("request_id")
    assert body == problem(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        "expected application/json, got text/plain",
        "/v1/courses",
    )


async def test_validation_errors_list_every_field(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.post("/v1/courses", json={"title": "x" * 21, "credits": -1})
    assert response.status_code == 422
    body = response.json()
    body.pop("request_id")
    field_errors = body.pop("errors")
    assert body == problem(
        422, "validation-error", "Request validation failed", "2 invalid fields", "/v1/courses"
    )
    assert field_errors == [
        {
            "pointer": "#/title",
            "detail": "String should have at most 20 characters",
            "type": "string_too_long",
        },
        {
            "pointer": "#/credits",
            "detail": "Input should be greater than or equal to 0",
            "type": "greater_than_equal",
        },
    ]


async def test_json_body_that_is_not_an_object(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.post("/v1/courses", json=[1, 2])
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#"  # the whole document (RFC 6901)


async def test_path_parameter_errors_name_the_parameter(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.get("/v1/courses/abc")
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "parameter": "course_id",
            "detail": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]


async def test_unknown_route(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    body = response.json()
    body.pop("request_id")
    assert body == problem(
        404,
        "not-found",
        "Resource not found",
        "no route matches GET /v1/nothing-here",
        "/v1/nothing-here",
    )


async def test_wrong_method(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.delete("/v1/courses")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    body = response.json()
    body.pop("request_id")
    assert body == problem(
        405,
        "method-not-allowed",
        "Method not allowed",
        "DELETE is not allowed on /v1/courses",
        "/v1/courses",
    )


async def test_problem_error_from_a_handler(service: Service) -> None:
    async with service_client(service) as client:
        missing = await client.get("/v1/courses/404")
        conflict = await client.get("/v1/courses/409")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "course 404 does not exist"
    assert conflict.status_code == 409
    assert conflict.headers["retry-after"] == "5"
    assert conflict.json()["state"] == "archived"
    assert conflict.json()["type"] == BASE + "conflict"


async def test_unhandled_exception_leaks_nothing_and_is_logged(service: Service) -> None:
    from lms_shared.testing import capture_logs

    async with service_client(service) as client:
        with capture_logs() as logs:
            response = await client.get("/v1/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal-error"
    assert body["detail"] == "an unexpected error occurred; quote the request id when reporting it"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    [logged] = logs.events("unhandled exception")
    assert logged["request_id"] == response.headers["x-request-id"] == body["request_id"]
    assert logged["log_level"] == "error"
    assert logged["exc_info"] is True
    [access] = logs.events("request")
    assert access["status"] == 500


def test_catalogue_is_consistent() -> None:
    # the same code listed twice is fine
    catalogue = errors.Catalogue(errors.PROBLEMS, errors.PROBLEMS)
    assert len(catalogue) == len(errors.PROBLEMS)
    assert catalogue["not-found"] is errors.NOT_FOUND
    assert catalogue.for_status(404) is errors.NOT_FOUND
    assert catalogue.for_status(400) is errors.BAD_REQUEST
    with pytest.raises(ValueError, match="declared twice"):
        errors.Catalogue(errors.PROBLEMS, [errors.ErrorCode("not-found", 410, "Gone")])
    with pytest.raises(ValueError, match="4xx or 5xx"):
        errors.ErrorCode("fine", 200, "OK")
    with pytest.raises(ValueError, match="dashes"):
        errors.ErrorCode("Not Found", 404, "Nope")


def test_an_unknown_status_gets_a_one_off_code_not_a_catalogue_entry() -> None:
    catalogue = errors.Catalogue(errors.PROBLEMS)
    teapot = catalogue.for_status(418)
    assert (teapot.slug, teapot.status, teapot.title) == ("http-418", 418, "I'm a Teapot")
    assert "http-418" not in catalogue
    assert catalogue.for_status(599).title == "HTTP error"


def test_problem_error_carries_its_code() -> None:
    exc = BadRequest("nope", code=errors.INVALID_CURSOR)
    assert exc.status == 400
    assert exc.problem_code.slug == "invalid-cursor"
    assert str(exc) == "nope"
    assert str(ProblemError()) == "Bad request"
    assert NotFound().status == 404


async def test_custom_problem_base_uri(make_service: Callable[..., Service]) -> None:
    service = make_service(problem_base_uri="https://errors.example.com/p")
    async with service_client(service) as client:
        response = await client.get("/missing")
    assert response.json()["type"] == "https://errors.example.com/p/not-found"


async def test_http_exception_with_unlisted_status(make_service: Callable[..., Service]) -> None:
    from fastapi import HTTPException

    service = make_service()

    @service.router.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418, detail={"short": "and stout"})

    async with service_client(service) as client:
        response = await client.get("/teapot")
    assert response.status_code == 418
    body = response.json()
    assert body["code"] == "http-418"
    assert body["detail"] == '{"short": "and stout"}'


async def test_problem_extensions_never_echo_secrets_or_personal_data(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()

    @service.router.get("/v1/leaky")
    async def leaky() -> None:
        raise Conflict("duplicate user", email="ann@example.org", password="hunter2", user_id=7)

    async with service_client(service) as client:
        response = await client.get("/v1/leaky")
    body = response.json()
    assert response.status_code == 409
    assert body["user_id"] == 7
    assert "ann@example.org" not in response.text
    assert "hunter2" not in response.text
    assert body["email"] == body["password"] != "ann@example.org"


async def test_instance_is_a_percent_encoded_uri_reference() -> None:
    service = create_service("probe", "1.0.0", settings=load_settings())

    @service.router.post("/v1/courses/{course_id}/publish")
    async def publish(course_id: str) -> None:
        raise NotFound(f"course {course_id} does not exist")

    async with service_client(service) as client:
        response = await client.post("/v1/courses/%C2%A3Y%20x/publish")
        missing = await client.get("/v1/caf%C3%A9")
    assert response.status_code == 404
    assert response.json()["instance"] == "/v1/courses/%C2%A3Y%20x/publish"
    assert missing.json()["instance"] == "/v1/caf%C3%A9"
    assert all(ord(ch) < 128 for ch in response.json()["instance"])
