"""Against a real uvicorn server process: graceful shutdown and the log format."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

APP = """
import asyncio
from lms_shared import FunctionComponent, create_service

journal = open("journal.txt", "a", buffering=1)

async def start() -> None:
    journal.write("start\\n")

async def stop() -> None:
    journal.write("stop\\n")

service = create_service("grading", version="0.9.0")
service.add_component(FunctionComponent("store", start=start, stop=stop))

@service.router.get("/v1/slow")
async def slow() -> dict[str, str]:
    journal.write("slow begin\\n")
    await asyncio.sleep(1.5)
    journal.write("slow end\\n")
    return {"status": "done"}

@service.router.get("/v1/boom")
async def boom() -> None:
    raise ValueError("internal detail 12345")

app = service.app
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    (tmp_path / "grading_app.py").write_text(APP)
    port = free_port()
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "grading_app:app",
                "--port",
                str(port),
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "10",
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start:\n{log.read_text()}")
        time.sleep(0.1)
    try:
        yield proc, base, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_sigterm_drains_in_flight_requests_then_stops_components(
    server: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    proc, base, folder = server
    journal = folder / "journal.txt"
    with httpx.Client(timeout=10) as client:
        import threading

        result: dict[str, httpx.Response] = {}
        thread = threading.Thread(
            target=lambda: result.setdefault("slow", client.get(f"{base}/v1/slow"))
        )
        thread.start()
        deadline = time.monotonic() + 15
        while "slow begin" not in journal.read_text():
            assert time.monotonic() < deadline, "the slow request never reached the handler"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        thread.join(15)
    assert proc.wait(15) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it drained on
    assert result["slow"].status_code == 200
    assert result["slow"].json() == {"status": "done"}
    assert journal.read_text().split("\n")[:-1] == ["start", "slow begin", "slow end", "stop"]


def test_log_lines_are_json_with_request_context(
    server: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    proc, base, folder = server
    response = httpx.get(f"{base}/v1/boom", headers={"X-Request-ID": "trace-me-1"})
    assert response.status_code == 500
    assert "12345" not in response.text
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    text = (folder / "server.log").read_text().splitlines()
    # uvicorn prints two lines before the lifespan configures logging
    first_json = next(i for i, line in enumerate(text) if line.startswith("{"))
    assert first_json <= 2
    lines = [json.loads(line) for line in text[first_json:]]
    access = [line for line in lines if line.get("event") == "request"]
    assert access == [
        {
            "service": "grading",
            "version": "0.9.0",
            "logger_name": "lms.access",
            "method": "GET",
            "route": "/v1/boom",
            "status": 500,
            "duration_ms": access[0]["duration_ms"],
            "event": "request",
            "request_id": "trace-me-1",
            "trace_id": access[0]["trace_id"],
            "span_id": access[0]["span_id"],
            "level": "info",
            "timestamp": access[0]["timestamp"],
        }
    ]
    assert len(access[0]["trace_id"]) == 32
    assert len(access[0]["span_id"]) == 16
    [error] = [line for line in lines if line.get("event") == "unhandled exception"]
    assert error["request_id"] == "trace-me-1"
    assert "ValueError: internal detail 12345" in error["exception"]
    # uvicorn's own lines come through the same JSON renderer; its access log stays off
    assert any(line.get("logger_name") == "uvicorn.error" for line in lines)
    assert not any(line.get("logger_name") == "uvicorn.access" for line in lines)
    assert access[0]["timestamp"].endswith("Z")


def test_serve_command_logs_json_from_the_first_line(tmp_path: Path) -> None:
    (tmp_path / "grading_app.py").write_text(APP)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    env["LMS_DRAIN_TIMEOUT"] = "3"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lms_shared.cli",
            "serve",
            "grading_app:service",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert "server" not in response.headers
        httpx.get(f"http://127.0.0.1:{port}/v1/boom")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    lines = [json.loads(line) for line in output.decode().splitlines()]
    events = [line["event"] for line in lines]
    assert events[0] == f"Started server process [{proc.pid}]"
    assert "service started" in events
    assert "service stopped" in events
    assert [line["route"] for line in lines if line["event"] == "request"] == ["/v1/boom"]


def test_serve_command_refuses_bad_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    env["LMS_LOG_LEVEL"] = "loud"
    result = subprocess.run(
        [sys.executable, "-m", "lms_shared.cli", "serve", "grading_app:service"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "LMS_LOG_LEVEL" in result.stderr
