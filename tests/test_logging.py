"""The process-wide logging configuration."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

from lms_shared.observability import (
    configure_logging,
    current_request_id,
    get_logger,
    is_configured,
    reset_logging,
)
from lms_shared.observability.context import request_id_var


def test_json_lines_carry_level_time_request_id_and_bound_keys() -> None:
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    assert is_configured()
    token = request_id_var.set("req-42")
    try:
        get_logger("grading", service="grading").info("grade recorded", score=9.5)
        get_logger("grading").debug("not shown")
    finally:
        request_id_var.reset(token)
    [line] = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["event"] == "grade recorded"
    assert line["score"] == 9.5
    assert line["service"] == "grading"
    assert line["logger_name"] == "grading"
    assert line["request_id"] == "req-42"
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")
    assert current_request_id() is None


def test_stdlib_records_use_the_same_renderer() -> None:
    stream = io.StringIO()
    configure_logging(level="warning", stream=stream)
    logging.getLogger("sqlalchemy.pool").warning("pool is %s", "exhausted")
    logging.getLogger("sqlalchemy.pool").info("not shown")
    [line] = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["event"] == "pool is exhausted"
    assert line["logger_name"] == "sqlalchemy.pool"
    assert line["level"] == "warning"


def test_exceptions_are_rendered_with_their_traceback() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    try:
        raise KeyError("course-9")
    except KeyError:
        get_logger().exception("lookup failed")
    line = json.loads(stream.getvalue())
    assert "KeyError: 'course-9'" in line["exception"]
    assert line["level"] == "error"


def test_console_format_is_for_people() -> None:
    stream = io.StringIO()
    configure_logging(fmt="console", stream=stream)
    get_logger().info("hello", who="instructor")
    text = stream.getvalue()
    assert "hello" in text
    assert "who=instructor" in text
    assert not text.startswith("{")


def test_reconfigure_replaces_the_handler_and_reset_removes_it() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    configure_logging(stream=io.StringIO())
    configure_logging(stream=io.StringIO())
    assert len(root.handlers) == before + 1
    reset_logging()
    assert len(root.handlers) == before
    assert not is_configured()


def test_line_writer_fast_path_writes_the_same_fields() -> None:
    from lms_shared.observability import LineWriter

    stream = io.StringIO()
    configure_logging(stream=stream)
    writer = LineWriter("request", "lms.access", service="courses", version="1.0.0")
    token = request_id_var.set("rid-7")
    try:
        writer(method="GET", route="/v1/x", status=200, duration_ms=1.5)
    finally:
        request_id_var.reset(token)
    line = json.loads(stream.getvalue())
    assert line == {
        "service": "courses",
        "version": "1.0.0",
        "logger_name": "lms.access",
        "method": "GET",
        "route": "/v1/x",
        "status": 200,
        "duration_ms": 1.5,
        "event": "request",
        "request_id": "rid-7",
        "level": "info",
        "timestamp": line["timestamp"],
    }
    assert line["timestamp"].endswith("Z")


def test_line_writer_falls_back_to_structlog_when_not_json_or_not_info() -> None:
    from lms_shared.observability import LineWriter
    from lms_shared.testing import capture_logs

    writer = LineWriter("request", "lms.access", service="courses")
    console = io.StringIO()
    configure_logging(fmt="console", stream=console)
    writer(status=201)
    assert "request" in console.getvalue()
    assert "status=201" in console.getvalue()
    quiet = io.StringIO()
    configure_logging(level="warning", stream=quiet)
    writer(status=202)
    assert quiet.getvalue() == ""
    configure_logging(stream=io.StringIO())
    with capture_logs() as logs:
        writer(status=203)
    assert logs.events("request")[0]["status"] == 203


def test_secrets_and_personal_data_are_masked_in_log_lines() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    get_logger().info("user signed up", email="ann@example.org", api_key="lms_abc123", course=3)
    line = json.loads(stream.getvalue())
    assert "ann@example.org" not in stream.getvalue()
    assert "lms_abc123" not in stream.getvalue()
    assert line["course"] == 3


def test_captured_lines_are_masked_like_production() -> None:
    from lms_shared.testing import capture_logs

    with capture_logs() as logs:
        get_logger().info("login", password="hunter2", user="u-1")
    assert logs[0]["password"] != "hunter2"
    assert logs[0]["user"] == "u-1"


class _CountingStream(io.StringIO):
    """A stream that counts its flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_fast_lines_are_flushed_together_soon_after() -> None:
    from lms_shared.observability import LineWriter

    stream = _CountingStream()
    configure_logging(stream=stream)
    writer = LineWriter("request", "lms.access", service="courses")
    before = stream.flushes

    async def three_requests() -> tuple[int, int]:
        for status in (200, 201, 404):
            writer(status=status)
        pending = stream.flushes - before
        for _ in range(500):  # within FLUSH_EVERY (bounded poll, no timing assertion)
            await asyncio.sleep(0.01)
            if stream.flushes > before:
                break
        return pending, stream.flushes - before

    try:
        pending, after = asyncio.run(three_requests())
        assert (pending, after) == (0, 1)  # one flush for the three lines
        assert [json.loads(x)["status"] for x in stream.getvalue().splitlines()] == [200, 201, 404]
        writer(status=500)  # outside a loop: flushed at once
        assert stream.flushes - before == 2
    finally:
        reset_logging()


def test_a_pending_flush_is_done_when_logging_is_reset() -> None:
    from lms_shared.observability import LineWriter

    stream = _CountingStream()
    configure_logging(stream=stream)
    writer = LineWriter("request", "lms.access", service="courses")

    async def write_and_reset() -> int:
        writer(status=200)
        before = stream.flushes
        reset_logging()  # before the loop's turn ends
        return stream.flushes - before

    assert asyncio.run(write_and_reset()) == 1


def test_log_ship_off_keeps_lines_on_standard_output_only(tmp_path: Path) -> None:
    from lms_shared import load_settings
    from lms_shared.observability import log_shipper
    from lms_shared.observability._logging import configure_service_logging

    stream = io.StringIO()
    try:
        on = load_settings(state_dir=tmp_path)
        configure_service_logging(on, service="courses", version="1.0", stream=stream)
        assert log_shipper() is not None
        off = load_settings(state_dir=tmp_path, log_ship=False)
        configure_service_logging(off, service="courses", version="1.0", stream=stream)
        assert log_shipper() is None
        get_logger("lms.test").info("only here")
        assert "only here" in stream.getvalue()
    finally:
        reset_logging()
