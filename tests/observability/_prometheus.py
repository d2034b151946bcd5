"""Real Prometheus, Alertmanager and promtool for the alerting tests.

Debian's ``prometheus`` package provides ``prometheus`` and ``promtool``,
``prometheus-alertmanager`` provides ``prometheus-alertmanager`` (upstream's
``alertmanager``) and ``amtool``. A missing binary skips the test on a
developer's machine and fails it under ``CI=true``
(:func:`lms_shared.testing.server_missing`).

Everything listens on loopback ports chosen free at start; each private
process writes its log into its own temporary folder, which is removed when
it stops (the log is kept in the failure message when it did not start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import uvicorn

from lms_shared.testing import server_missing

#: (binary names, in order of preference) -> the Debian package that has them
PACKAGES = {
    "promtool": ("prometheus", ("promtool",)),
    "prometheus": ("prometheus", ("prometheus",)),
    "alertmanager": ("prometheus-alertmanager", ("prometheus-alertmanager", "alertmanager")),
    "amtool": ("prometheus-alertmanager", ("amtool",)),
}


def find_binary(tool: str) -> str | None:
    """The path of ``tool`` (a key of :data:`PACKAGES`), or ``None``."""
    _, names = PACKAGES[tool]
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def binary(tool: str) -> str:
    """The path of ``tool``; skips the test (fails it under CI) when it is missing."""
    found = find_binary(tool)
    if found is None:
        package, names = PACKAGES[tool]
        server_missing(f"{' or '.join(names)} is not installed (apt-get install {package})")
    return found


def run_tool(tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``tool`` (bounded: 60 s) and return what it did."""
    return subprocess.run(
        [binary(tool), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- private processes -----------------------------------------------------------


@dataclass
class Private:
    """One private process (Prometheus, Alertmanager) on a loopback port."""

    name: str
    port: int
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """The last lines it wrote."""
        try:
            lines = (self.root / "log.txt").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-40:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; its folder is removed."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private(
    name: str, tool: str, files: dict[str, str], args: list[str], *, port: int | None = None
) -> Iterator[Private]:
    """Start ``tool`` in a new temporary folder holding ``files``; wait for ``/-/ready``.

    ``args`` may use ``{root}`` and ``{port}``. Fails the test (with the
    process's log) when it is not ready within 20 s.
    """
    path = binary(tool)
    port = port or free_port()
    root = Path(tempfile.mkdtemp(prefix=f"lms-{name}-"))
    try:
        for file, text in files.items():
            (root / file).write_text(text, encoding="utf-8")
        with (root / "log.txt").open("wb") as log:
            process = subprocess.Popen(
                [path, *(a.format(root=root, port=port) for a in args)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
            )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    running = Private(name, port, root, process)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{running.url}/-/ready", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not become ready within 20 s:\n{running.log()}")
            time.sleep(0.1)
        yield running
    finally:
        running.stop()


def prometheus(config: str, rules: str) -> contextlib.AbstractContextManager[Private]:
    """A private Prometheus with ``config`` (prometheus.yml) and ``rules`` (rules.yml)."""
    return private(
        "prometheus",
        "prometheus",
        {"prometheus.yml": config, "rules.yml": rules},
        [
            "--config.file={root}/prometheus.yml",
            "--storage.tsdb.path={root}/data",
            "--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
    )


def alertmanager(config: str) -> contextlib.AbstractContextManager[Private]:
    """A private Alertmanager (no cluster port) with ``config`` (alertmanager.yml)."""
    return private(
        "alertmanager",
        "alertmanager",
        {"alertmanager.yml": config},
        [
            "--config.file={root}/alertmanager.yml",
            "--storage.path={root}/data",
            "--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
    )


# -- a webhook receiver ----------------------------------------------------------


@dataclass
class Webhook:
    """A tiny HTTP server that keeps every JSON body POSTed to it."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification received so far."""
        with self.lock:
            return [alert for body in self.received for alert in body.get("alerts", [])]


@contextlib.contextmanager
def webhook() -> Iterator[Webhook]:
    """Receive Alertmanager's webhook notifications on a loopback port."""
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with hook.lock:
                hook.received.append(body)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    hook = Webhook(server, thread)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# -- a service under uvicorn (as tests/client/conftest.py serves them) ------------


class _Server(uvicorn.Server):
    """uvicorn without signal handlers (it runs inside the test process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Served:
    """An app served by uvicorn on 127.0.0.1:port in the test's event loop."""

    port: int
    server: _Server
    task: asyncio.Task[None]
    sock: socket.socket

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 10)
        finally:
            self.sock.close()


async def serve(app: Any, *, lifespan: Literal["auto", "on", "off"] = "on") -> Served:
    """Serve ``app`` on a free loopback port, its lifespan run (bounded start-up: 10 s)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, lifespan=lifespan, log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )
    server = _Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            sock.close()
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("uvicorn did not start within 10 s")
        await asyncio.sleep(0.01)
    return Served(sock.getsockname()[1], server, task, sock)
