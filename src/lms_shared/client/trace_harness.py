"""``POST /test``: the endpoint the W3C Trace Context test harness drives.

The harness (w3c/trace-context, ``test/test.py``) sends a JSON array of
``{"url": ..., "arguments": [...]}``; the service POSTs each element's
``arguments`` as JSON to its ``url``, in order, with the chassis client
inside the request's trace context, then answers 200. The harness reads
the ``traceparent``/``tracestate`` those calls carry and checks them
against the recommendation (a new parent id per call, the random flag
kept, invalid input restarting the trace...).

It makes the service call any URL it is given, so it is mounted only
outside production (:func:`install_trace_harness` refuses otherwise) and
is left out of the OpenAPI document. The body is bounded: at most
:data:`MAX_CALLS` calls of URLs up to 2,048 characters, within the
service's body-size and JSON-depth limits. The calls carry the service's
outgoing credentials for an audience named after the harness's origin,
which no service accepts.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Body, FastAPI, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lms_shared.client._client import ServiceClient
from lms_shared.errors import ConfigurationError
from lms_shared.settings import Settings

__all__ = ["CLIENT_PREFIX", "MAX_CALLS", "HarnessCall", "install_trace_harness"]

CLIENT_PREFIX = "trace-harness-"
"""The names of the clients the endpoint makes (one per origin it is told to call)."""

MAX_CALLS = 64
"""Calls one ``POST /test`` may ask for."""


class HarnessCall(BaseModel):
    """One call the harness asks for: POST ``arguments`` as JSON to ``url``."""

    model_config = ConfigDict(extra="ignore")

    url: Annotated[str, Field(max_length=2048)]
    arguments: Annotated[list[Any], Field(max_length=MAX_CALLS)] = []

    @field_validator("url")
    @classmethod
    def _absolute_http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value


class _Service(Protocol):
    """What the endpoint needs of :class:`lms_shared.Service`."""

    settings: Settings
    app: FastAPI

    def client(self, name: str, **options: Any) -> ServiceClient: ...


def _client_name(origin: str) -> str:
    # one client per origin: a client's base URL is fixed when it is made
    return CLIENT_PREFIX + hashlib.sha256(origin.encode()).hexdigest()[:16]


def install_trace_harness(service: _Service, *, path: str = "/test") -> None:
    """Mount ``POST /test`` on ``service`` (never in production).

    Raises:
        ConfigurationError: ``LMS_ENV=production``.
    """
    if service.settings.env == "production":
        raise ConfigurationError(
            "the trace-context harness endpoint calls any URL it is given: "
            "it is not mounted in production"
        )
    router = APIRouter(include_in_schema=False)

    @router.post(path, status_code=200)
    async def trace_harness(
        calls: Annotated[list[HarnessCall], Body(max_length=MAX_CALLS)],
    ) -> Response:
        for call in calls:
            parts = urlsplit(call.url)
            origin = f"{parts.scheme}://{parts.netloc}"
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            client = service.client(_client_name(origin), url=origin, retries=0)
            await client.request(
                "POST",
                target,
                content=orjson.dumps(call.arguments),
                headers={"content-type": "application/json"},
            )
        return Response(status_code=200)

    service.app.include_router(router)
