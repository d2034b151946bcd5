"""Shared keys, clocks, an identity-like server over a real socket, and services."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from lms_shared import Service, create_service, load_settings
from lms_shared.auth import Principal, SigningKey, TokenSigner
from lms_shared.clock import SystemClock
from lms_shared.http import (
    ProblemRenderer,
    ServiceClients,
    jwks_router,
    optional_principal,
    require,
    token_router,
)
from lms_shared.http.problems import install_problem_handlers
from lms_shared.testing import ManualClock

ISSUER = "https://identity.test"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CLIENTS = {"grading": "grading-secret-0123456789abcdef", "enrollments": "enroll-secret-0123456789"}


@pytest.fixture(scope="session")
def keys() -> dict[str, SigningKey]:
    """One signing key per algorithm, generated once per test run."""
    return {
        alg: SigningKey.generate(alg)  # type: ignore[arg-type]
        for alg in ("RS256", "PS256", "ES256", "EdDSA")
    }


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def signer(keys: dict[str, SigningKey], clock: ManualClock) -> TokenSigner:
    """Signs with the RS256 key the identity server publishes, on the test's clock."""
    return TokenSigner(ISSUER, [keys["RS256"]], clock=clock)


class ThreadServer:
    """An ASGI app served by uvicorn on a free 127.0.0.1 port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def identity_app(signer: TokenSigner) -> FastAPI:
    """A tiny identity-like service: the JWKS and the client-credentials endpoint."""
    app = FastAPI()
    install_problem_handlers(app, ProblemRenderer("https://lms.example.org/problems/"))
    app.include_router(jwks_router(signer))
    app.include_router(token_router(signer, ServiceClients(CLIENTS), ttl=300))
    return app


@pytest.fixture(scope="session")
def identity_server(keys: dict[str, SigningKey]) -> Iterator[ThreadServer]:
    """The identity-like service over a real socket (system clock: it issues real tokens)."""
    signer = TokenSigner(ISSUER, [keys["RS256"], keys["ES256"]], clock=SystemClock())
    with ThreadServer(identity_app(signer)) as server:
        yield server


@pytest.fixture
def jwks_url(identity_server: ThreadServer) -> str:
    return f"{identity_server.url}/.well-known/jwks.json"


def add_routes(service: Service) -> None:
    """The protected routes every HTTP test uses."""
    v1 = service.api(1)

    @v1.get("/courses/{course_id}")
    async def read(course_id: str, who: Principal = require("course:read")) -> dict[str, Any]:
        return {"subject": who.subject, "kind": who.kind, "roles": sorted(who.roles)}

    @v1.post("/courses/{course_id}/grades", status_code=201)
    async def grade(
        course_id: str, who: Principal = require("grade:write", course="course_id")
    ) -> dict[str, Any]:
        return {"graded_by": who.subject, "course": course_id}

    @v1.get("/whoami")
    async def whoami(who: Principal | None = optional_principal()) -> dict[str, Any]:
        return {"subject": None if who is None else who.subject}

    service.include(v1)


@pytest.fixture
def make_protected(clock: ManualClock) -> Callable[..., Service]:
    """A ``courses`` service with the protected routes, on the test's clock."""

    def make(name: str = "courses", *, clock_: Any = None, **overrides: Any) -> Service:
        settings = load_settings(auth_issuer=ISSUER, **overrides)
        service = create_service(name, "1.0.0", settings=settings, clock=clock_ or clock)
        add_routes(service)
        return service

    return make
