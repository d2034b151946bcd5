"""The embedded log store: bounded, shared by processes, searched by ``lms-shared logs``."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lms_shared.cli import app
from lms_shared.cli._logs import parse_time
from lms_shared.observability import (
    LogShipper,
    LogStore,
    configure_logging,
    configure_service_logging,
    get_logger,
    log_shipper,
    reset_logging,
)
from lms_shared.observability._logship import StoreSink
from lms_shared.observability._logstore import MAX_LINE_BYTES, LogEntry
from lms_shared.settings import load_settings
from lms_shared.testing import service_client

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

WRITER = """
import logging, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from lms_shared.observability import configure_service_logging, get_logger, reset_logging
from lms_shared.settings import load_settings

service, trace_id = sys.argv[1], sys.argv[2]
configure_service_logging(load_settings(), service=service, version="1.0.0")
remote = SpanContext(int(trace_id, 16), 0x00F067AA0BA902B7, True, TraceFlags(TraceFlags.SAMPLED))
parent = trace.set_span_in_context(NonRecordingSpan(remote))
tracer = TracerProvider().get_tracer("probe")
with tracer.start_as_current_span(service + " work", context=parent):
    get_logger(service + ".handler").info("in the trace", step=1, password="hunter2")
    logging.getLogger(service + ".stdlib").error("stdlib error in the trace")
get_logger(service + ".handler").warning("outside the trace")
get_logger(service + ".handler").debug("below the level")
reset_logging()
"""


def entry(n: int, **overrides: Any) -> LogEntry:
    fields: dict[str, Any] = {
        "ts_ns": 1_000 + n,
        "level": "info",
        "service": "courses",
        "logger": "courses",
        "event": f"line {n}",
        "trace_id": None,
        "span_id": None,
        "request_id": None,
        "line": json.dumps({"event": f"line {n}", "n": n}),
    }
    fields.update(overrides)
    return LogEntry(**fields)


def test_the_store_keeps_the_newest_lines_and_bounds_each_line(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3", max_lines=10)
    store.add([entry(n) for n in range(15)])
    store.add([entry(n) for n in range(15, 25)])
    assert store.count() == 10
    assert [found.fields["n"] for found in store.search(limit=100)] == list(range(15, 25))
    assert [found.fields["n"] for found in store.search(limit=3)] == [22, 23, 24]
    huge = entry(99, line=json.dumps({"event": "big", "blob": "x" * (MAX_LINE_BYTES + 1)}))
    store.add([huge])
    [found] = store.search(limit=1)
    assert found.fields["truncated"] > MAX_LINE_BYTES
    assert found.fields["event"] == "line 99"


def test_one_batch_larger_than_the_bound_keeps_only_its_newest_lines(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3", max_lines=10)
    store.add([entry(n) for n in range(15)])
    assert store.count() == 10
    found = store.search(limit=100)
    assert [f.fields["n"] for f in found] == list(range(5, 15))
    assert [f.id for f in found] == list(range(6, 16))  # positions: later lines, larger ids
    store.add([entry(n, service="grading") for n in range(15, 18)])
    assert [f.fields["n"] for f in store.search(limit=100)] == list(range(8, 18))
    assert store.services() == ["courses", "grading"]


def test_lines_of_several_services_in_one_write_are_found_by_service(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3")
    store.add([entry(n, service=("courses", "grading")[n % 2]) for n in range(6)])
    grading = store.search(services=["grading"])
    assert [(f.service, f.fields["n"]) for f in grading] == [("grading", n) for n in (1, 3, 5)]
    assert [f.fields["n"] for f in store.search(services=["courses"], limit=2)] == [2, 4]
    assert store.count() == 6


def test_ids_that_json_escapes_or_that_are_not_ascii_are_found(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3")
    odd = ['r"1\\x', "r-ü-1", "r\t1"]
    store.add([entry(n, request_id=rid) for n, rid in enumerate(odd)] + [entry(9)])
    for n, rid in enumerate(odd):
        assert [f.fields["n"] for f in store.search(request_id=rid)] == [n]
    assert store.search(request_id="r") == []  # whole ids, not parts


def test_a_file_of_the_row_per_line_layout_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "logs.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE logs (id INTEGER PRIMARY KEY, line TEXT)")
        old.execute("INSERT INTO logs (line) VALUES ('{}')")
    store = LogStore(path)
    store.add([entry(1, trace_id=TRACE)])
    assert [f.fields["n"] for f in store.search(trace_id=TRACE)] == [1]
    tables = {row[0] for row in store._connect().execute("SELECT name FROM sqlite_master")}
    assert "logs" not in tables


def test_search_filters_by_service_trace_request_level_and_time(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3")
    store.add(
        [
            entry(1, service="courses", trace_id=TRACE, level="debug"),
            entry(2, service="grading", trace_id=TRACE, level="error", request_id="r-1"),
            entry(3, service="grading", level="warning"),
            entry(4, service="identity", level="critical"),
        ]
    )

    def ns(**filters: Any) -> list[int]:
        return [found.fields["n"] for found in store.search(**filters)]

    assert ns() == [1, 2, 3, 4]
    assert ns(services=["grading"]) == [2, 3]
    assert ns(services=["grading", "identity"]) == [2, 3, 4]
    assert ns(trace_id=TRACE.upper()) == [1, 2]
    assert ns(request_id="r-1") == [2]
    assert ns(level="warning") == [2, 3, 4]
    assert ns(level="error", services=["grading"]) == [2]
    assert ns(since_ns=1_003) == [3, 4]
    assert ns(until_ns=1_002) == [1]
    assert LogStore(tmp_path / "absent.sqlite3").search() == []
    assert not (tmp_path / "absent.sqlite3").exists()


def test_two_processes_write_one_store_and_the_cli_searches_across_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    env["LMS_STATE_DIR"] = str(tmp_path)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name, TRACE],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("enrollments", "grading")
    ]
    for proc in writers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        assert b"hunter2" not in out
    runner = CliRunner()
    cli_env = {"LMS_STATE_DIR": str(tmp_path)}

    def search(*args: str) -> list[dict[str, Any]]:
        result = runner.invoke(app, ["logs", *args, "--json"], env=cli_env)
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines()]

    traced = search("--trace", TRACE)
    assert len(traced) == 4
    assert {line["service"] for line in traced} == {"enrollments", "grading"}
    assert all(line["trace_id"] == TRACE for line in traced)
    assert all(line.get("password") in (None, "**********") for line in traced)
    grading = search("--service", "grading")
    assert [line["event"] for line in grading] == [
        "in the trace",
        "stdlib error in the trace",
        "outside the trace",
    ]
    errors = search("--level", "error")
    # the two writers ran at once: which service wrote first is not known
    assert sorted((line["service"], line["event"]) for line in errors) == [
        ("enrollments", "stdlib error in the trace"),
        ("grading", "stdlib error in the trace"),
    ]
    assert len(search("--level", "warning", "--limit", "1")) == 1
    assert search("--since", "1d", "--service", "enrollments")[0]["event"] == "in the trace"
    assert search("--until", "2000-01-01T00:00:00Z") == []
    text = runner.invoke(app, ["logs", "--trace", TRACE], env=cli_env)
    assert text.exit_code == 0
    assert "grading" in text.stdout
    assert "ERROR" in text.stdout
    assert "step=1" in text.stdout


def test_the_cli_refuses_bad_filters_and_says_when_nothing_matches(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"LMS_STATE_DIR": str(tmp_path)}
    for args in (["--trace", "xyz"], ["--level", "loud"], ["--since", "yesterday"]):
        result = runner.invoke(app, ["logs", *args], env=env)
        assert result.exit_code == 2, args
    empty = runner.invoke(app, ["logs"], env=env)
    assert empty.exit_code == 0
    assert "no log lines match" in empty.stderr


def test_parse_time_reads_durations_and_iso_times() -> None:
    assert parse_time("15m", now=10_000.0) == int((10_000 - 900) * 1e9)
    assert parse_time("2h", now=10_000.0) == int((10_000 - 7200) * 1e9)
    assert parse_time("1970-01-01T00:00:10Z") == 10 * 10**9
    assert parse_time("1970-01-01T00:00:10") == 10 * 10**9
    with pytest.raises(ValueError, match="neither"):
        parse_time("soon")


async def test_a_service_keeps_its_lines_in_the_state_folder(tmp_path: Path) -> None:
    from lms_shared import create_service

    settings = load_settings(state_dir=tmp_path, log_levels={"lms.access": "info"})
    service = create_service("courses", "1.4.0", settings=settings)

    @service.router.get("/v1/ping")
    async def ping() -> dict[str, str]:
        get_logger("courses.ping").info("pinged")
        return {"ok": "yes"}

    async with service_client(service) as client:
        response = await client.get("/v1/ping", headers={"x-request-id": "req-ping"})
        assert response.status_code == 200
        shipper = log_shipper()
        assert shipper is not None
        assert shipper.sink.name == "embedded store"
    reset_logging()  # delivers what is queued
    store = LogStore.in_state_dir(tmp_path)
    mine = store.search(request_id="req-ping")
    assert [found.event for found in mine] == ["pinged", "request"]
    assert {found.service for found in mine} == {"courses"}
    assert mine[1].fields["status"] == 200
    assert mine[1].logger == "lms.access"
    assert "service started" in [found.event for found in store.search(services=["courses"])]


def test_configuring_again_for_the_same_service_keeps_the_shipper(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    configure_service_logging(settings, service="courses", version="1", stream=io.StringIO())
    first = log_shipper()
    configure_service_logging(settings, service="courses", version="1", stream=io.StringIO())
    assert log_shipper() is first
    configure_service_logging(settings, service="grading", version="1", stream=io.StringIO())
    assert log_shipper() is not first


class Broken:
    name = "broken"

    def __init__(self) -> None:
        self.closed = False

    def write(self, batch: Any) -> bool:
        raise OSError("disk full")

    def close(self) -> None:
        self.closed = True


def test_a_failing_sink_and_a_full_queue_never_reach_the_caller() -> None:
    sink = Broken()
    shipper = LogShipper(sink, max_queue=5, batch_size=100, interval=60)
    stream = io.StringIO()
    configure_logging(stream=stream, shipper=shipper)
    for n in range(50):
        get_logger("x").info("line", n=n)
    assert len(stream.getvalue().splitlines()) == 50  # standard output has every line
    assert len(shipper) <= 5
    assert shipper.dropped >= 45
    shipper.flush()
    assert shipper.failed >= 1
    assert shipper.shipped == 0
    reset_logging()
    assert sink.closed
    shipper.submit(entry(1))
    assert shipper.stats()["queued"] == 0  # closed: later lines are dropped


def test_store_sink_writes_batches(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3")
    shipper = LogShipper(StoreSink(store), interval=60)
    for n in range(3):
        shipper.submit(entry(n))
    shipper.close()
    assert shipper.shipped == 3
    assert LogStore(store.path).count() == 3
