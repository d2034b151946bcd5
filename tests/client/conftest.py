"""Real servers for the client tests: uvicorn instances on loopback, a private etcd.

Each instance is a real uvicorn server on a free loopback port, run in the
test's event loop (its own socket, its own connections), so a test can
"kill" one (close its socket and connections: the next connect is
refused) and count what each one received. Services built with
``create_service`` run with their lifespan (components start and stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from lms_shared.testing import server_missing

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


class _Server(uvicorn.Server):
    """uvicorn without signal handlers (several run in one test process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Running:
    """One uvicorn server serving an app on 127.0.0.1:port."""

    app: Any
    port: int
    server: _Server
    task: asyncio.Task[None]
    sock: socket.socket

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop gracefully: in-flight requests finish, the lifespan shuts down."""
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)

    async def kill(self) -> None:
        """Stop at once: listening socket closed, open connections dropped."""
        self.server.should_exit = True
        self.server.force_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 10)


def bind() -> socket.socket:
    """A socket bound to a free loopback port (pass it to :func:`serve`)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def serve(app: Any, *, lifespan: str = "off", sock: socket.socket | None = None) -> Running:
    """Serve ``app`` with uvicorn on a free loopback port (bounded start-up)."""
    sock = sock or bind()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan=lifespan, log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )
    server = _Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 10 s")
        await asyncio.sleep(0.01)
    return Running(app, port, server, task, sock)


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Any]]:
    """Start uvicorn servers with ``await start(app)``; all are stopped after the test."""
    running: list[Running] = []

    async def start(
        app: Any, *, lifespan: str = "off", sock: socket.socket | None = None
    ) -> Running:
        server = await serve(app, lifespan=lifespan, sock=sock)
        running.append(server)
        return server

    try:
        yield start
    finally:
        for server in running:
            if not server.task.done():
                server.server.should_exit = True
        for server in running:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(server.task, 10)
            server.sock.close()


@dataclass
class Counter:
    """What one instance app received."""

    name: str
    hits: int = 0
    posts: int = 0
    seen: list[dict[str, str]] = field(default_factory=list)


def instance_app(name: str) -> tuple[FastAPI, Counter]:
    """A small FastAPI app that says who it is and counts what it got."""
    app = FastAPI()
    counter = Counter(name)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, str]:
        counter.hits += 1
        counter.seen.append(dict(request.headers))
        return {"instance": name}

    @app.post("/items")
    async def create(request: Request) -> JSONResponse:
        counter.posts += 1
        counter.seen.append(dict(request.headers))
        return JSONResponse({"instance": name, "n": counter.posts}, status_code=201)

    @app.get("/unavailable")
    async def unavailable() -> Response:
        counter.hits += 1
        return Response(
            b'{"type":"x","title":"busy","status":503,"code":"service-unavailable"}',
            status_code=503,
            media_type="application/problem+json",
        )

    @app.post("/unavailable")
    async def unavailable_post() -> Response:
        counter.posts += 1
        return Response(b"{}", status_code=503, media_type="application/problem+json")

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "pass"}

    return app, counter


# -- etcd ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def etcd_url() -> Iterator[str]:
    """One private etcd member for the session: its ``etcd://`` URL (tests use a prefix)."""
    if not os.access(ETCD, os.X_OK):
        server_missing(f"etcd is not installed at {ETCD} (apt-get install etcd-server)")
    root = Path(tempfile.mkdtemp(prefix="lms-client-etcd-"))
    client, peer = free_port(), free_port()
    with (root / "etcd.log").open("wb") as log:
        process = subprocess.Popen(
            [
                ETCD,
                "--name", "m0",
                "--data-dir", str(root / "data"),
                "--listen-client-urls", f"http://127.0.0.1:{client}",
                "--advertise-client-urls", f"http://127.0.0.1:{client}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", f"m0=http://127.0.0.1:{peer}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{client}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("etcd did not become healthy within 20 s")
            time.sleep(0.05)
        yield f"etcd://127.0.0.1:{client}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
