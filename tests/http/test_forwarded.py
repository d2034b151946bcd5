"""Forwarding headers are believed in one place, the chassis, and only from trusted proxies.

Against a real ``lms-shared serve`` process on a free port (uvicorn's own
proxy handling would believe ``127.0.0.1``), then in process for the
pieces that read the client: the rate-limit key of the middleware and of
``rate_limited``, HSTS, ``request.client`` and ``request.url``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import Request

from lms_shared import Service, create_service, load_settings
from lms_shared.http import rate_limited
from lms_shared.http.proxies import ForwardedMiddleware, TrustedProxies
from lms_shared.testing import service_client
from lms_shared.types import Message, Scope

APP = """
from fastapi import Request
from lms_shared import create_service
from lms_shared.http import rate_limited

service = create_service("identity", version="1.0.0")

@service.router.post("/v1/login", dependencies=[rate_limited("20/minute", name="login")])
async def login() -> dict[str, str]:
    return {"token": "t"}

@service.router.get("/v1/whoami")
async def whoami(request: Request) -> dict[str, str | None]:
    client = request.client
    return {"client": client.host if client else None, "scheme": request.url.scheme}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Serve = Callable[..., str]
SERVE = (sys.executable, "-m", "lms_shared.cli", "serve", "login_app:service")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start ``lms-shared serve`` on a free port with some ``LMS_*`` settings; its base URL."""
    (tmp_path / "login_app.py").write_text(APP)
    procs: list[subprocess.Popen[bytes]] = []

    def start(**settings: str) -> str:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
        env.update({f"LMS_{k.upper()}": v for k, v in settings.items()})
        env["LMS_STATE_DIR"] = str(tmp_path / f"state-{port}")
        log = tmp_path / f"server-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*SERVE, "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not start:\n{log.read_text()}")
            time.sleep(0.1)

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def logins(base: str, count: int) -> list[int]:
    with httpx.Client(base_url=base, timeout=10) as client:
        return [
            client.post("/v1/login", headers={"x-forwarded-for": f"203.0.113.{i}"}).status_code
            for i in range(1, count + 1)
        ]


def test_served_without_trusted_proxies_forwarding_headers_change_nothing(serve: Serve) -> None:
    base = serve()
    codes = logins(base, 26)
    assert codes[:20] == [200] * 20
    assert codes[20:] == [429] * 6  # one address, one quota, whatever each request claims
    with httpx.Client(base_url=base, timeout=10) as client:
        spoofed = client.get(
            "/v1/whoami",
            headers={"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https"},
        )
        rfc7239 = client.get("/v1/whoami", headers={"forwarded": "for=198.51.100.7;proto=https"})
    assert spoofed.status_code == 200
    assert "strict-transport-security" not in spoofed.headers
    assert spoofed.json() == {"client": "127.0.0.1", "scheme": "http"}
    assert rfc7239.json() == {"client": "127.0.0.1", "scheme": "http"}


def test_served_behind_a_trusted_proxy_its_headers_are_honoured(serve: Serve) -> None:
    base = serve(trusted_proxies=json.dumps(["127.0.0.1"]))
    assert logins(base, 26) == [200] * 26  # 26 clients behind the proxy, 26 quotas
    with httpx.Client(base_url=base, timeout=10) as client:
        proxied = client.get(
            "/v1/whoami",
            headers={"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https"},
        )
        direct = client.get("/v1/whoami")
    assert proxied.json() == {"client": "198.51.100.7", "scheme": "https"}
    assert proxied.headers["strict-transport-security"].startswith("max-age=63072000")
    assert direct.json() == {"client": "127.0.0.1", "scheme": "http"}
    assert "strict-transport-security" not in direct.headers


def build(**overrides: object) -> Service:
    service = create_service("identity", "1.0.0", settings=load_settings(**overrides))

    @service.router.post("/v1/login", dependencies=[rate_limited("3/minute", name="login")])
    async def login() -> dict[str, str]:
        return {"token": "t"}

    @service.router.get("/v1/whoami")
    async def whoami(request: Request) -> dict[str, str | None]:
        client = request.client
        return {"client": client.host if client else None, "scheme": request.url.scheme}

    return service


async def test_every_reader_of_the_client_sees_the_one_the_proxy_forwarded() -> None:
    # httpx's ASGI transport connects from 127.0.0.1: make that the trusted proxy.
    # rate_limited (a dependency, not the middleware) used to key on the proxy.
    async with service_client(build(trusted_proxies=["127.0.0.1"])) as client:
        codes = [
            (
                await client.post("/v1/login", headers={"x-forwarded-for": f"203.0.113.{i}"})
            ).status_code
            for i in range(6)
        ]
        same = [
            (
                await client.post("/v1/login", headers={"x-forwarded-for": "203.0.113.99"})
            ).status_code
            for _ in range(4)
        ]
        who = await client.get(
            "/v1/whoami", headers={"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https"}
        )
    assert codes == [200] * 6
    assert same == [200, 200, 200, 429]
    assert who.json() == {"client": "198.51.100.7", "scheme": "https"}
    assert "strict-transport-security" in who.headers


async def test_without_trusted_proxies_the_client_is_the_peer() -> None:
    async with service_client(build()) as client:
        codes = [
            (
                await client.post("/v1/login", headers={"x-forwarded-for": f"203.0.113.{i}"})
            ).status_code
            for i in range(4)
        ]
        who = await client.get(
            "/v1/whoami", headers={"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https"}
        )
    assert codes == [200, 200, 200, 429]
    assert who.json() == {"client": "127.0.0.1", "scheme": "http"}


async def test_the_middleware_rewrites_only_connections_from_trusted_proxies() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: object, send: object) -> None:
        seen.append(dict(scope))

    middleware = ForwardedMiddleware(app, proxies=TrustedProxies(["10.0.0.0/8"]))

    def scope(peer: str, kind: str = "http", **headers: str) -> Scope:
        return {
            "type": kind,
            "scheme": "ws" if kind == "websocket" else "http",
            "client": (peer, 5000),
            "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
        }

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        return None

    forwarded = {"x_forwarded_for": "198.51.100.7, 10.0.0.2", "x_forwarded_proto": "https"}
    await middleware(scope("10.0.0.1", **forwarded), receive, send)
    await middleware(scope("203.0.113.9", **forwarded), receive, send)
    await middleware(scope("10.0.0.1", "websocket", **forwarded), receive, send)
    await middleware(scope("10.0.0.1", x_forwarded_proto="gopher"), receive, send)
    proxied, direct, socket_, odd = seen
    assert proxied["client"] == ("198.51.100.7", 0)
    assert proxied["scheme"] == "https"
    assert proxied["lms.peer"] == ("10.0.0.1", 5000)
    assert direct["client"] == ("203.0.113.9", 5000)
    assert direct["scheme"] == "http"
    assert "lms.peer" not in direct
    assert socket_["scheme"] == "wss"
    assert odd["client"] == ("10.0.0.1", 0)  # no X-Forwarded-For: the proxy itself
    assert odd["scheme"] == "http"
