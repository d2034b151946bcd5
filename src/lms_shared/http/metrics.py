"""The HTTP side of metrics: the request histogram, slow-request lines, ``/metrics``.

:class:`RequestRecorder` measures each finished request; a service's
request middleware calls it itself, inside the request id and the trace
(so the slow line carries them), and :class:`MetricsMiddleware` is the
same as a pure ASGI layer for other apps.
Per request it does one dictionary lookup and one histogram observation:
``http_server_request_duration_seconds`` by method, route *template* (never
the raw path: ``/v1/courses/{course_id}``; no route matched: ``unmatched``)
and status. A request slower than ``LMS_SLOW_REQUEST_THRESHOLD`` logs one
``slow request`` line (``lms.slow``) carrying its trace id and request id.

:func:`install_metrics` adds ``GET /metrics``: the Prometheus text format
(OpenMetrics when the scraper asks for it), the sum over every worker in
multiprocess mode. It is not rate limited and not in the OpenAPI
document. Each scrape also refreshes ``lms_health_ready`` when no
readiness probe answered recently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from lms_shared.http.health import HealthRegistry
from lms_shared.http.ratelimit import exempt
from lms_shared.http.routes import route_template
from lms_shared.http.state import RuntimeState
from lms_shared.observability import Metrics, get_logger
from lms_shared.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "METRICS_PATH",
    "MetricsMiddleware",
    "RequestRecorder",
    "install_metrics",
    "readiness_of",
]

METRICS_PATH = "/metrics"
_READY_ROUTE = "/health/ready"

TraceId = Callable[[], str | None]
Readiness = Callable[[], Awaitable[bool]]


class RequestRecorder:
    """What a finished request adds to the metrics: its histogram sample, a slow line.

    :class:`MetricsMiddleware` calls it, and so does the service's
    :class:`~lms_shared.http.request.RequestMiddleware` itself (one layer
    less per request: it has the status, the route and the duration anyway).

    Args:
        metrics: the service's metrics.
        trace_id: returns the current trace id (the slow-request line
            carries it); the request id alone when ``None``.
    """

    def __init__(self, metrics: Metrics, *, trace_id: TraceId | None = None) -> None:
        self.metrics = metrics
        self.trace_id = trace_id
        self.slow = metrics.config.slow_request
        self.log = get_logger("lms.slow", service=metrics.service, version=metrics.version)

    def __call__(self, scope: Scope, route: str | None, status: int, seconds: float) -> None:
        """Record one request (``status`` 0: no response started, counted as 500)."""
        self.metrics.http_request(scope["method"], route, status or 500, seconds)
        if route == _READY_ROUTE:  # a probe just ran the checks: reuse the result
            self.metrics.ready(status == 200)
        if self.slow and seconds >= self.slow:
            self._slow(scope, route, status, seconds)

    def _slow(self, scope: Scope, route: str | None, status: int, seconds: float) -> None:
        fields: dict[str, object] = {
            "method": scope["method"],
            "route": route,
            "status": status or 500,
            "duration_ms": round(seconds * 1000, 3),
            "threshold_ms": round(self.slow * 1000, 3),
        }
        if self.trace_id is not None:
            fields["trace_id"] = self.trace_id()
        self.log.warning("slow request", **fields)


class MetricsMiddleware:
    """Measure every HTTP request; log the slow ones (for apps without the request middleware).

    Args:
        app: the wrapped ASGI app.
        metrics: the service's metrics.
        trace_id: returns the current trace id (the slow-request line
            carries it); the request id alone when ``None``.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, trace_id: TraceId | None = None) -> None:
        self.app = app
        self.record = RequestRecorder(metrics, trace_id=trace_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.record(scope, route_template(scope), status, time.perf_counter() - started)


def readiness_of(health: HealthRegistry, state: RuntimeState) -> Readiness:
    """Whether the service is ready, as ``/health/ready`` decides it (for scrapes)."""

    async def ready() -> bool:
        if not state.started or state.draining:
            return False
        results = await health.run()
        return all(result.status != "fail" for result in results.values())

    return ready


def install_metrics(app: FastAPI, metrics: Metrics, *, readiness: Readiness | None = None) -> None:
    """Add ``GET /metrics`` to ``app``.

    Args:
        app: the service's app.
        metrics: what it renders.
        readiness: evaluated by a scrape when no readiness result is
            younger than ``readiness_max_age`` (``lms_health_ready``).
    """

    @exempt
    async def scrape(request: Request) -> Response:
        if readiness is not None and metrics.readiness_stale():
            metrics.ready(await readiness())
        # rendering reads every series (and, in multiprocess mode, files): off the loop
        body, content_type = await asyncio.to_thread(metrics.render, request.headers.get("accept"))
        return Response(body, media_type=None, headers={"content-type": content_type})

    app.add_api_route(
        METRICS_PATH, scrape, methods=["GET"], include_in_schema=False, name="metrics"
    )
