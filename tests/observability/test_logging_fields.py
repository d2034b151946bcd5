"""Every line is JSON with service, version, trace and request context; redaction; levels."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry.sdk.trace import TracerProvider

from lms_shared.errors import SettingsError
from lms_shared.observability import LineWriter, configure_logging, get_logger, reset_logging
from lms_shared.observability.context import request_id_var
from lms_shared.settings import load_settings
from lms_shared.types import Receive, Scope, Send


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_structlog_and_stdlib_lines_carry_service_version_and_request_id() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, service="courses", version="1.4.0")
    token = request_id_var.set("req-1")
    try:
        get_logger("courses.store").info("course saved", course=7)
        logging.getLogger("sqlalchemy.pool").warning("pool %s", "exhausted", extra={"size": 5})
    finally:
        request_id_var.reset(token)
    own, stdlib = lines_of(stream)
    for line in (own, stdlib):
        assert line["service"] == "courses"
        assert line["version"] == "1.4.0"
        assert line["request_id"] == "req-1"
        assert line["timestamp"].endswith("Z")
        assert "trace_id" not in line  # outside a span
    assert own["logger_name"] == "courses.store"
    assert own["level"] == "info"
    assert own["course"] == 7
    assert stdlib == {**stdlib, "event": "pool exhausted", "level": "warning", "size": 5}
    assert stdlib["logger_name"] == "sqlalchemy.pool"


def test_a_bound_service_wins_over_the_process_one() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, service="courses", version="1.4.0")
    get_logger("x", service="grading").info("hello")
    [line] = lines_of(stream)
    assert line["service"] == "grading"
    assert line["version"] == "1.4.0"


def test_trace_and_span_ids_inside_a_span_of_the_sdk() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, service="grading", version="2.0.0")
    tracer = TracerProvider().get_tracer("test")
    writer = LineWriter("request", "lms.access", service="grading", version="2.0.0")
    with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner") as inner:
        get_logger("grading").info("inside")
        logging.getLogger("grading.stdlib").warning("stdlib inside")
        writer(status=200)  # the access log's fast path
    get_logger("grading").info("outside")
    *inside, outside = lines_of(stream)
    context = inner.get_span_context()
    assert len(inside) == 3
    for line in inside:
        assert line["trace_id"] == f"{context.trace_id:032x}"
        assert line["span_id"] == f"{context.span_id:016x}"
    assert "trace_id" not in outside
    assert "span_id" not in outside


async def test_uvicorn_lines_come_out_as_json_with_the_fields() -> None:
    # servers run earlier in this process (access_log=False, log_level="warning")
    # left uvicorn's loggers muted: start from the state of a fresh process
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.handlers.clear()
    stream = io.StringIO()
    configure_logging(stream=stream, service="courses", version="1.0.0")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=True, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/v1/x?token=s3cr3t-value")
    assert response.status_code == 204
    server.should_exit = True
    await task
    text = stream.getvalue()
    lines = lines_of(stream)  # every line parses as JSON
    assert "s3cr3t-value" not in text  # the query string never reaches a line
    names = {line["logger_name"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access"} <= names
    for line in lines:
        assert line["service"] == "courses"
        assert line["version"] == "1.0.0"
        assert line["level"] in {"info", "warning"}
    [access] = [line for line in lines if line["logger_name"] == "uvicorn.access"]
    assert access["event"] == "GET /v1/x 204"
    assert access["method"] == "GET"
    assert access["path"] == "/v1/x"
    assert access["status"] == 204
    assert any("Uvicorn running on" in line["event"] for line in lines)


def test_secrets_are_masked_at_any_depth_in_structlog_and_stdlib_lines() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    deep: dict[str, Any] = {"token": "deep-token-1"}
    for _ in range(12):  # deeper than the redactor looks: hidden whole, never passed on
        deep = {"level": deep}
    get_logger().info(
        "payload",
        body={"user": {"profile": [{"contact": {"email": "ann@example.org"}}]}},
        items=[{"login": {"password": "hunter2"}}],
        dsn="postgresql://lms:pw-in-url@db/lms",
        deep=deep,
        course=3,
    )
    logging.getLogger("httpx").warning(
        "calling with Bearer abcdefgh.ijklmnop.qrstuvwx",
        extra={"headers": {"Authorization": "Basic dXNlcjpwYXNz", "x-api-key": "lms_key_1"}},
    )
    text = stream.getvalue()
    for secret in (
        "deep-token-1",
        "ann@example.org",
        "hunter2",
        "pw-in-url",
        "abcdefgh.ijklmnop",
        "dXNlcjpwYXNz",
        "lms_key_1",
    ):
        assert secret not in text, secret
    first, second = lines_of(stream)
    assert first["course"] == 3
    assert first["items"] == [{"login": {"password": "**********"}}]
    assert second["headers"]["x-api-key"] == "**********"


def test_levels_per_logger_for_stdlib_and_structlog_loggers() -> None:
    stream = io.StringIO()
    configure_logging(
        stream=stream,
        level="info",
        levels={"sqlalchemy.engine": "warning", "chatty": "debug", "lms.access": "error"},
    )
    engine = logging.getLogger("sqlalchemy.engine.Engine")
    engine.info("SELECT 1")  # a child of sqlalchemy.engine: warning and above
    engine.warning("slow statement")
    logging.getLogger("other").info("other info")
    get_logger("chatty.child").debug("chatty debug")  # below the root level, but allowed
    get_logger("quiet").debug("quiet debug")
    LineWriter("request", "lms.access")(status=200)  # the access log is off at info
    events = [line["event"] for line in lines_of(stream)]
    assert events == ["slow statement", "other info", "chatty debug"]
    reset_logging()
    assert logging.getLogger("sqlalchemy.engine").level == logging.NOTSET  # restored


def test_a_level_set_higher_than_the_root_silences_a_structlog_logger() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, level="debug", levels={"noisy": "error"})
    get_logger("noisy").warning("dropped")
    get_logger("noisy").error("kept")
    get_logger("noisyish").debug("another logger")
    assert [line["event"] for line in lines_of(stream)] == ["kept", "another logger"]


def test_log_levels_setting_is_validated_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LMS_LOG_LEVELS", '{"sqlalchemy.engine": "WARNING", "lms.access": "info"}')
    assert load_settings().log_levels == {"sqlalchemy.engine": "warning", "lms.access": "info"}
    for bad in ('{"sqlalchemy.engine": "loud"}', '{"a b": "info"}', "{not json", '["info"]'):
        monkeypatch.setenv("LMS_LOG_LEVELS", bad)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert [variable for variable, _ in caught.value.problems] == ["LMS_LOG_LEVELS"], bad
    with pytest.raises(ValueError, match="not one of"):
        configure_logging(levels={"x": "verbose"})
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="loud")


def test_console_format_still_ships_json(tmp_path: Any) -> None:
    from lms_shared.observability import LogShipper, LogStore
    from lms_shared.observability._logship import StoreSink

    store = LogStore(tmp_path / "logs.sqlite3")
    stream = io.StringIO()
    configure_logging(
        fmt="console", stream=stream, service="courses", shipper=LogShipper(StoreSink(store))
    )
    get_logger("c").info("for people", n=1)
    reset_logging()
    assert "for people" in stream.getvalue()
    assert not stream.getvalue().startswith("{")
    [found] = LogStore(store.path).search()
    assert found.fields["n"] == 1
    assert found.service == "courses"
