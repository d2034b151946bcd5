"""Answers become typed results: problems, hostile bodies, models, credentials, headers.

The callee is a real service (``create_service``) on uvicorn; the caller
reaches it with a fixed ``url=`` so that each test controls the answer.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import httpx
import orjson
import pytest
from fastapi import Request, Response
from pydantic import BaseModel

from lms_shared import Conflict, NotFound, ServiceUnavailable, create_service, load_settings
from lms_shared.auth import Principal
from lms_shared.client import (
    InvalidResponse,
    ServiceCallError,
    UpstreamBadRequest,
    UpstreamConflict,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from lms_shared.errors import BadRequest, ErrorCode
from lms_shared.http import require
from lms_shared.http.deadline import TENANT_HEADER
from lms_shared.resilience import RETRY_HOP_HEADER, AttemptTimeout, DeadlineExceeded
from lms_shared.testing import FakeIdentity, lifespan, service_client

from .conftest import Running

PROBLEM = "application/problem+json"
ENROLLED = ErrorCode("already-enrolled", 409, "Already enrolled")


class User(BaseModel):
    id: UUID
    name: str


def problem(status: int, code: str, detail: str = "", **more: Any) -> Response:
    body = {"type": f"https://lms.example.org/problems/{code}", "title": code, "status": status,
            "code": code, "detail": detail, **more}  # fmt: skip
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM)


def callee_app() -> Any:
    service = create_service("users", "1.0.0", settings=load_settings())
    hits: dict[str, int] = {}

    @service.router.get("/users/{user_id}")
    async def user(user_id: str) -> Any:
        hits[user_id] = hits.get(user_id, 0) + 1
        if user_id == "missing":
            raise NotFound("no user missing")
        if user_id == "enrolled":
            raise Conflict("user is enrolled already", code=ENROLLED, enrollment_id="e-1")
        if user_id == "bad":
            raise BadRequest("bad id")
        if user_id == "busy":
            return problem(503, "service-unavailable", "busy", **{})
        if user_id == "teapot":
            return problem(418, "i-am-a-teapot", "short and stout")
        if user_id == "huge-problem":
            return problem(404, "not-found", "x" * (2 << 20))
        if user_id == "deep-problem":
            nested = "[" * 100_000 + "]" * 100_000
            body = b'{"code": "not-found", "status": 404, "x": ' + nested.encode() + b"}"
            return Response(body, status_code=404, media_type=PROBLEM)
        if user_id == "not-json-problem":
            return Response(b"<html>oops</html>", status_code=502, media_type="text/html")
        if user_id == "huge":
            return Response(b'{"id": "' + b"x" * (10 << 20) + b'"}', media_type="application/json")
        if user_id == "deep":
            return Response(b"[" * 40 + b"]" * 40, media_type="application/json")
        if user_id == "very-deep":
            return Response(b"[" * 100_000 + b"]" * 100_000, media_type="application/json")
        if user_id == "wrong-shape":
            return {"id": "not-a-uuid"}
        return {"id": str(UUID(int=1)), "name": "Ada", "extra": True}

    @service.router.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(30)
        return {}

    @service.router.get("/echo")
    async def echo(request: Request) -> dict[str, str]:
        return dict(request.headers)

    @service.router.get("/me")
    async def me(request: Request, who: Principal = require()) -> dict[str, Any]:
        return {"subject": who.subject, "kind": who.kind, "roles": sorted(who.roles)}

    service.app.state.hits = hits
    return service


@pytest.fixture
async def users(servers: Callable[..., Any]) -> Running:
    service = callee_app()
    server: Running = await servers(service.app, lifespan="on")
    server.app.state.service_obj = service
    return server


def caller(url: str, **options: Any) -> Any:
    service = create_service("courses", "1.0.0", settings=load_settings())
    return service, service.client("users", url=url, **options)


async def test_problem_answers_are_typed_errors(users: Running) -> None:
    service, client = caller(users.url)
    async with lifespan(service.app):
        with pytest.raises(UpstreamNotFound) as missing:
            await client.get_json("/users/missing")
        with pytest.raises(UpstreamConflict) as conflict:
            await client.get_json("/users/enrolled")
        with pytest.raises(UpstreamBadRequest) as bad:
            await client.get_json("/users/bad")
        with pytest.raises(UpstreamUnavailable) as busy:
            await client.get_json("/users/busy")
        with pytest.raises(ServiceCallError) as teapot:
            await client.get_json("/users/teapot")

    assert isinstance(missing.value, NotFound)
    assert (missing.value.status, missing.value.received_code) == (404, "not-found")
    assert missing.value.detail == "no user missing"
    assert missing.value.service == "users"
    assert isinstance(conflict.value, Conflict)
    assert conflict.value.problem_code.slug == "already-enrolled"
    assert conflict.value.problem["enrollment_id"] == "e-1"
    assert isinstance(bad.value, BadRequest)
    assert isinstance(busy.value, ServiceUnavailable)
    assert (busy.value.status, busy.value.received_status) == (503, 503)
    assert busy.value.detail == "the users service answered 503"
    assert (teapot.value.status, teapot.value.problem_code.slug) == (418, "i-am-a-teapot")
    assert users.app.state.hits["busy"] == 3  # a 503 read is retried
    assert users.app.state.hits["missing"] == 1  # a 404 is not
    again = pickle.loads(pickle.dumps(missing.value))
    assert (type(again), again.detail, again.received_status) == (
        UpstreamNotFound,
        "no user missing",
        404,
    )


@pytest.mark.parametrize("which", ["huge-problem", "deep-problem"])
async def test_an_oversized_or_deep_problem_body_is_still_a_typed_error(
    users: Running, which: str
) -> None:
    service, client = caller(users.url)
    async with lifespan(service.app):
        with pytest.raises(UpstreamNotFound) as raised:
            await client.get_json(f"/users/{which}")

    assert raised.value.status == 404
    assert raised.value.problem == {}  # unreadable: left out, never a crash
    assert raised.value.received_code is None
    assert raised.value.detail == "the users service answered 404"


async def test_an_error_answer_that_is_not_a_problem_is_typed_by_its_status(
    users: Running,
) -> None:
    service, client = caller(users.url, retries=0)
    async with lifespan(service.app):
        with pytest.raises(UpstreamUnavailable) as raised:
            await client.get_json("/users/not-json-problem")
    assert raised.value.received_status == 502


@pytest.mark.parametrize(
    ("which", "why"),
    [
        ("huge", "more than 8388608 bytes"),
        ("deep", "nested deeper than 32 levels"),
        ("very-deep", "depth limit exceeded"),
        ("wrong-shape", "not a valid User (2 invalid fields)"),
    ],
)
async def test_a_hostile_or_wrong_success_body_is_invalid_response(
    users: Running, which: str, why: str
) -> None:
    service, client = caller(users.url)
    async with lifespan(service.app):
        with pytest.raises(InvalidResponse) as raised:
            await client.get_json(f"/users/{which}", model=User)

    assert raised.value.status == 502
    assert raised.value.problem_code.slug == "bad-gateway"
    assert why in str(raised.value.detail)


async def test_json_helpers_return_models(users: Running) -> None:
    service, client = caller(users.url)
    async with lifespan(service.app):
        user = await client.get_json("/users/ok", model=User)
        raw = await client.get_json("/users/ok")
        many = await client.get_json("/users/ok", model=dict[str, Any])

    assert user == User(id=UUID(int=1), name="Ada")
    assert raw["extra"] is True
    assert many["name"] == "Ada"


async def test_an_attempt_timeout_is_typed_and_bounded(users: Running) -> None:
    service, client = caller(users.url, attempt_timeout=0.2, retries=1, timeout=5)
    async with lifespan(service.app):
        with pytest.raises(AttemptTimeout) as raised:
            await client.get_json("/slow")

    assert raised.value.status == 504
    assert raised.value.timeout == 0.2


async def test_uncaught_errors_answer_as_this_services_problems(users: Running) -> None:
    service, client = caller(users.url)

    @service.router.get("/proxy/{user_id}")
    async def proxy(user_id: str) -> Any:
        return await client.get_json(f"/users/{user_id}")

    async with service_client(service) as http:
        missing = await http.get("/proxy/missing")
        conflict = await http.get("/proxy/enrolled")
        busy = await http.get("/proxy/busy")

    assert (missing.status_code, missing.json()["code"]) == (404, "not-found")
    assert missing.json()["detail"] == "no user missing"
    assert (conflict.status_code, conflict.json()["code"]) == (409, "already-enrolled")
    assert "enrollment_id" not in conflict.json()  # the callee's extensions stay there
    assert (busy.status_code, busy.json()["code"]) == (503, "service-unavailable")
    assert busy.headers["retry-after"] == "1"


async def test_calls_carry_credentials_request_id_tenant_and_marks(users: Running) -> None:
    identity = FakeIdentity()
    callee = users.app.state.service_obj
    identity.install(callee)
    service, client = caller(users.url)
    identity.install(service)
    tenant = str(uuid4())

    @service.router.get("/who")
    async def who(request: Request, _: Principal = require()) -> Any:
        return {"me": await client.get_json("/me"), "headers": await client.get_json("/echo")}

    async with service_client(service) as http:
        answer = await http.get(
            "/who",
            headers={**identity.headers("ada", tenant=tenant), "x-request-id": "req-42"},
        )
        anonymous = await service.clients.get("users").get_json("/echo")

    body = answer.json()
    assert answer.status_code == 200, body
    assert body["me"] == {"subject": "courses", "kind": "service", "roles": ["service"]}
    headers = body["headers"]
    assert headers["authorization"].startswith("Bearer ")
    assert headers["x-request-id"] == "req-42"
    assert headers[TENANT_HEADER] == tenant  # the caller's principal's tenant
    assert headers[RETRY_HOP_HEADER] == "1"  # this hop may retry: the next must not
    assert headers["user-agent"] == "courses/1.0.0"
    assert "x-request-id" not in anonymous  # outside a request there is none


async def test_an_upstream_retrying_hop_turns_retries_off(users: Running) -> None:
    service, client = caller(users.url)

    @service.router.get("/busy")
    async def busy() -> Any:
        return await client.get_json("/users/busy")

    async with service_client(service) as http:
        first = await http.get("/busy")
        hits_once = users.app.state.hits["busy"]
        second = await http.get("/busy", headers={RETRY_HOP_HEADER: "1"})

    assert first.status_code == second.status_code == 503
    assert hits_once == 3
    assert users.app.state.hits["busy"] == 4  # the caller retries: not this hop


async def test_deadline_exceeded_down_the_chain_is_ours_too(servers: Callable[..., Any]) -> None:
    async def spent(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b'{"status":504,"code":"deadline-exceeded","title":"Deadline exceeded"}'
        await send({"type": "http.response.start", "status": 504,
                    "headers": [(b"content-type", PROBLEM.encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    server = await servers(spent)
    service, client = caller(server.url)
    async with lifespan(service.app):
        with pytest.raises(DeadlineExceeded):
            await client.get_json("/x")


async def test_transport_errors_are_service_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    service = create_service("courses", "1.0.0", settings=load_settings())
    client = service.client(
        "users", url="http://users.test", transport=httpx.MockTransport(refuse), retries=0
    )
    with pytest.raises(ServiceUnavailable) as raised:
        await client.get_json("/x")
    await service.clients.stop()
    assert raised.value.detail == "the users service is unreachable"
    assert raised.value.headers["Retry-After"] == "1"
