"""Request id and access log."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi import WebSocket

from lms_shared import Service
from lms_shared.http import valid_request_id
from lms_shared.observability import current_request_id, get_logger
from lms_shared.testing import capture_logs, service_client

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    service = make_service(version="2.3.4")
    log = get_logger("courses.handlers")

    @service.router.get("/v1/courses/{course_id}")
    async def read(course_id: int) -> dict[str, object]:
        log.info("reading course", course_id=course_id)
        return {"id": course_id, "request_id": current_request_id()}

    return service


async def test_well_formed_request_id_is_echoed_and_bound(service: Service) -> None:
    async with service_client(service) as client:
        with capture_logs() as logs:
            response = await client.get("/v1/courses/7", headers={"X-Request-ID": "abc-123.x:y_z"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-123.x:y_z"
    assert response.json() == {"id": 7, "request_id": "abc-123.x:y_z"}
    [handler_line] = logs.events("reading course")
    assert handler_line["request_id"] == "abc-123.x:y_z"


async def test_missing_request_id_is_generated(service: Service) -> None:
    async with service_client(service) as client:
        first = await client.get("/v1/courses/1")
        second = await client.get("/v1/courses/1")
    assert GENERATED.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    "hostile",
    [
        "a" * 129,
        "abc\x00def",
        "abc\x1b[31mred",
        "new\r\nline",
        "with space",
        'quote"d',
        "<script>",
        "",
        "é",
    ],
    ids=["too-long", "nul", "escape", "crlf", "space", "quote", "html", "empty", "non-ascii"],
)
async def test_hostile_request_id_is_replaced(service: Service, hostile: str) -> None:
    async with service_client(service) as client:
        with capture_logs() as logs:
            response = await client.get(
                "/v1/courses/1", headers=[(b"x-request-id", hostile.encode())]
            )
    assert response.status_code == 200
    new_id = response.headers["x-request-id"]
    assert GENERATED.fullmatch(new_id)
    assert response.json() == {"id": 1, "request_id": new_id}
    assert logs.events("request")[0]["request_id"] == new_id


def test_request_id_rules() -> None:
    assert valid_request_id(b"a" * 128)
    assert not valid_request_id(b"a" * 129)
    assert valid_request_id(b"4bf92f3577b34da6a3ce929d0e0e4736")
    assert not valid_request_id(b"a\tb")


async def test_access_log_line_has_route_template_not_raw_path(service: Service) -> None:
    async with service_client(service) as client:
        with capture_logs() as logs:
            await client.get("/v1/courses/42", headers={"X-Request-ID": "req-1"})
    [line] = logs.events("request")
    assert line["service"] == "courses"
    assert line["version"] == "2.3.4"
    assert line["request_id"] == "req-1"
    assert line["method"] == "GET"
    assert line["route"] == "/v1/courses/{course_id}"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert "42" not in str(line["route"])


async def test_unmatched_route_logs_no_path(service: Service) -> None:
    async with service_client(service) as client:
        with capture_logs() as logs:
            await client.get("/secret-token-in-path/abc")
    [line] = logs.events("request")
    assert line["status"] == 404
    assert line["route"] is None
    assert "secret-token" not in str(line)


async def test_health_probes_are_not_access_logged_when_passing(service: Service) -> None:
    async with service_client(service) as client:
        with capture_logs() as logs:
            await client.get("/health/live")
            await client.get("/health/ready")
    assert logs.events("request") == []


async def test_request_id_does_not_leak_between_requests(service: Service) -> None:
    async with service_client(service) as client:
        await client.get("/v1/courses/1", headers={"X-Request-ID": "one"})
    assert current_request_id() is None


async def test_non_http_scopes_pass_through(service: Service) -> None:
    @service.router.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text("hi")
        await socket.close()

    messages: list[dict[str, object]] = []
    inbox = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, object]:
        return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "headers": [],
        "query_string": b"",
        "scheme": "ws",
        "server": ("test", 80),
        "client": ("test", 1),
        "subprotocols": [],
        "asgi": {"version": "3.0"},
    }
    await service.app(scope, receive, send)
    assert [m["type"] for m in messages] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
