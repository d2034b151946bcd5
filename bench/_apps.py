"""The apps under test: one tiny JSON route, ``GET /ok`` -> ``{"ok": true}``.

Every variant serves the very same endpoint code, so their differences are
the stacks alone. The protected variants take one RS256 bearer token
(:func:`bearer_token`), check a permission and count the request against a
rate limit on the route; the token is signed with a key made once per run
and handed to the server processes in ``BENCH_RSA_KEY`` (a PEM file).

* ``fastapi``: bare FastAPI with the default settings (no auth);
* ``stack``: the usual hand-assembled stack on FastAPI:
  opentelemetry-instrumentation-fastapi (always-on sampling, a batch span
  processor), prometheus-fastapi-instrumentator, slowapi, a
  ``BaseHTTPMiddleware`` writing a JSON access line, and a PyJWT dependency;
* ``lms-off``: :func:`lms_shared.create_service` with ``require()`` and
  ``@limit`` on the route, tracing, metrics and central logs off (JSON
  access lines to standard output only);
* ``lms``: the same service with everything on, as a service runs by
  default: always-on tracing into the embedded span store, Prometheus
  metrics, access lines shipped to the embedded log store.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_fastapi_instrumentator import Instrumentator
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.types import ASGIApp

from lms_shared import create_service, load_settings
from lms_shared.auth import Principal, SigningKey, TokenSigner
from lms_shared.clock import SystemClock
from lms_shared.http import limit, require

__all__ = ["APPS", "ISSUER", "KEY_ENV", "NAMES", "PATH", "bearer_token", "make_key"]

PATH = "/ok"
ISSUER = "https://identity.bench.example"
AUDIENCE = "bench"
KEY_ENV = "BENCH_RSA_KEY"
RATE = "1000000/second"  # counted on every request, never refusing one


def make_key(folder: Path) -> Path:
    """Write a new RSA-2048 private key (PEM) into ``folder``; set ``BENCH_RSA_KEY``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = folder / "bench-rsa.pem"
    path.write_bytes(pem)
    path.chmod(0o600)
    os.environ[KEY_ENV] = str(path)
    return path


def _pem() -> str:
    path = os.environ.get(KEY_ENV)
    if not path:
        raise RuntimeError(f"{KEY_ENV} names no key file (bench._apps.make_key makes one)")
    return Path(path).read_text()


def bearer_token() -> str:
    """An RS256 access token for subject ``ada`` with role ``instructor``."""
    signer = TokenSigner(ISSUER, [SigningKey.from_pem(_pem())], clock=SystemClock(), ttl=3600)
    principal = Principal(subject="ada", roles=frozenset({"instructor"}))
    return signer.issue(principal, audience=AUDIENCE)


async def _ok() -> dict[str, bool]:
    return {"ok": True}


def fastapi_app() -> ASGIApp:
    """Bare FastAPI with the default settings."""
    app = FastAPI()
    app.get(PATH)(_ok)
    return app


def _service(*, everything: bool) -> ASGIApp:
    settings = load_settings(
        log_format="json",
        log_level="info",
        auth_issuer=ISSUER,
        auth_audience=[AUDIENCE],
        auth_algorithms=["RS256"],
        auth_signing_keys=[_pem()],
        metrics_enabled=everything,
        trace_sample_ratio=1.0 if everything else 0.0,
        log_ship=everything,
    )
    service = create_service("bench", version="1.0.0", settings=settings)

    @limit(RATE)
    async def ok(who: Principal = require("course:read")) -> dict[str, bool]:
        return await _ok()

    service.router.get(PATH)(ok)
    return service.app


def lms_off_app() -> ASGIApp:
    """The chassis with tracing, metrics and central logs off."""
    return _service(everything=False)


def lms_app() -> ASGIApp:
    """The chassis with everything on (its defaults)."""
    return _service(everything=True)


def stack_app() -> ASGIApp:
    """The usual hand-assembled stack: OTel + Prometheus instrumentators + slowapi + PyJWT."""

    class Discard(SpanExporter):
        """Exports nowhere: the SDK's work, without a collector's."""

        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    public = jwt.algorithms.RSAAlgorithm.from_jwk(
        json.dumps(SigningKey.from_pem(_pem()).public_jwk())
    )
    log = logging.getLogger("access")
    log.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    limiter = Limiter(key_func=get_remote_address)
    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    def claims(request: Request) -> dict[str, Any]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise HTTPException(401)
        try:
            found: dict[str, Any] = jwt.decode(
                token, public, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER
            )
        except jwt.PyJWTError:
            raise HTTPException(401) from None
        if "instructor" not in found.get("roles", ()):
            raise HTTPException(403)
        return found

    @limiter.limit(RATE)
    async def ok(
        request: Request, response: Response, _: dict[str, Any] = Depends(claims)
    ) -> dict[str, bool]:
        return await _ok()

    app.get(PATH)(ok)

    async def access(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        line = {
            "event": "request",
            "method": request.method,
            "path": request.url.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "request_id": request_id,
        }
        log.info(json.dumps(line))
        return response

    app.add_middleware(BaseHTTPMiddleware, dispatch=access)
    Instrumentator().instrument(app).expose(app)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return app


APPS: dict[str, Callable[[], ASGIApp]] = {
    "fastapi": fastapi_app,
    "stack": stack_app,
    "lms-off": lms_off_app,
    "lms": lms_app,
}
NAMES = {
    "fastapi": "FastAPI",
    "stack": "hand-assembled stack",
    "lms-off": "lms-shared, observability off",
    "lms": "lms-shared, everything on",
}
