"""Body size limit (413) and request timeout (504)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from fastapi import Request
from fastapi.responses import StreamingResponse

from lms_shared import Service
from lms_shared.http import BodyLimitMiddleware, ProblemRenderer, TimeoutMiddleware
from lms_shared.testing import capture_logs, service_client


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    service = make_service(max_body_bytes=100, request_timeout=0.2)

    @service.router.post("/v1/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    @service.router.post("/v1/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @service.router.get("/v1/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(5)
        return {"done": True}

    @service.router.get("/v1/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first "
            await asyncio.sleep(0.4)  # longer than the timeout, after the start
            yield b"second"

        return StreamingResponse(chunks(), media_type="text/plain")

    @service.router.get("/v1/raises-timeout")
    async def raises_timeout() -> None:
        raise TimeoutError("the handler's own timeout")

    return service


async def test_body_under_the_limit_is_accepted(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.post("/v1/echo", json={"a": "b" * 50})
    assert response.status_code == 200


async def test_declared_oversized_body_is_refused_before_reading(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.post("/v1/echo", json={"a": "b" * 200})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["connection"] == "close"
    body = response.json()
    assert body["code"] == "payload-too-large"
    assert body["detail"] == "request body of 208 bytes exceeds the limit of 100 bytes"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_streamed_oversized_body_is_refused(service: Service) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 30

    async with service_client(service) as client:
        response = await client.post("/v1/raw", content=chunks())
    assert response.status_code == 413
    assert response.json()["detail"] == "request body exceeds the limit of 100 bytes"


async def test_streamed_body_under_the_limit_is_read(service: Service) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"x" * 30
        yield b"y" * 30

    async with service_client(service) as client:
        response = await client.post("/v1/raw", content=chunks())
    assert response.json() == {"size": 60}


async def test_non_numeric_content_length_is_a_bad_request(service: Service) -> None:
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/raw",
        "headers": [(b"content-length", b"12abc")],
    }
    middleware = BodyLimitMiddleware(
        service.app, max_bytes=10, renderer=ProblemRenderer("https://x.test/")
    )
    await middleware(scope, receive, send)
    assert sent[0]["status"] == 400
    assert b"not a number" in sent[1]["body"]  # type: ignore[operator]


async def test_slow_handler_gets_a_504_problem(service: Service) -> None:
    async with service_client(service) as client:
        with capture_logs() as logs:
            response = await client.get("/v1/slow")
    assert response.status_code == 504
    body = response.json()
    assert body == {
        "type": "https://lms.example.org/problems/timeout",
        "title": "Request timed out",
        "status": 504,
        "detail": "the request did not complete within 0.2 seconds",
        "instance": "/v1/slow",
        "code": "timeout",
        "request_id": response.headers["x-request-id"],
    }
    assert logs.events("request timed out")[0]["request_id"] == body["request_id"]
    assert logs.events("request")[0]["status"] == 504


async def test_started_response_is_not_cut_by_the_timeout(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.get("/v1/stream")
    assert response.status_code == 200
    assert response.text == "first second"


async def test_handlers_own_timeout_error_is_a_500_not_a_504(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.get("/v1/raises-timeout")
    assert response.status_code == 500


def test_middleware_options_are_validated() -> None:
    renderer = ProblemRenderer("https://x.test")
    with pytest.raises(ValueError, match="positive"):
        BodyLimitMiddleware(lambda *_: None, max_bytes=0, renderer=renderer)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="positive"):
        TimeoutMiddleware(lambda *_: None, seconds=0, renderer=renderer)  # type: ignore[arg-type,return-value]


async def test_timeout_middleware_needs_a_task() -> None:
    middleware = TimeoutMiddleware(
        lambda *_: None,  # type: ignore[arg-type,return-value]
        seconds=1,
        renderer=ProblemRenderer("https://x.test/"),
    )
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[BaseException] = loop.create_future()

    def drive_outside_a_task() -> None:
        coro = middleware({"type": "http"}, None, None)  # type: ignore[arg-type]
        try:
            coro.send(None)
        except BaseException as exc:
            outcome.set_result(exc)

    loop.call_soon(drive_outside_a_task)
    error = await outcome
    assert isinstance(error, RuntimeError)
    assert "inside an asyncio task" in str(error)


async def test_cancellation_from_elsewhere_is_not_a_timeout(service: Service) -> None:
    started = asyncio.Event()

    @service.router.get("/v1/wait")
    async def wait() -> None:
        started.set()
        await asyncio.sleep(5)

    async with service_client(service) as client:
        request = asyncio.create_task(client.get("/v1/wait"))
        await started.wait()
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request


async def test_handler_that_swallows_the_timeout_still_answers(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(request_timeout=0.05)

    @service.router.get("/v1/stubborn")
    async def stubborn() -> dict[str, str]:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            return {"status": "ignored the cancellation"}
        return {"status": "slept"}

    async with service_client(service) as client:
        response = await client.get("/v1/stubborn")
        again = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ignored the cancellation"}
    assert again.status_code == 200
