"""Health endpoints: liveness, readiness and startup probes.

* ``GET /health/live``: the process answers (event loop responsive).
* ``GET /health/startup``: every component has started.
* ``GET /health/ready``: started, not draining, and every critical check
  passes. Checks run concurrently, each under its own timeout; the report
  gives each check's status and duration. Components register their own
  checks (``service.health.add("database", db.ping)``).

A failing probe answers 503 with the same report, so orchestrators and
people read the same thing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.responses import Response

from lms_shared.http.types import RuntimeState
from lms_shared.observability import get_logger

__all__ = ["CheckResult", "HealthCheck", "HealthRegistry", "HealthReport", "install_health"]

Check = Callable[[], Awaitable[object]]
Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One registered readiness check.

    Attributes:
        name: unique name shown in the report.
        check: async callable; returning means pass (a returned string is
            shown as ``output``), raising means fail.
        timeout: seconds before the check counts as failed.
        critical: a failing critical check makes the service not ready; a
            failing non-critical one only turns the report to ``warn``.
    """

    name: str
    check: Check
    timeout: float
    critical: bool = True


class CheckResult(BaseModel):
    """The outcome of one check."""

    status: Status
    duration_ms: float = Field(description="how long the check took")
    critical: bool = True
    output: str | None = Field(None, description="detail, or why it failed")


class HealthReport(BaseModel):
    """What the health endpoints answer."""

    status: Status
    service: str
    version: str
    checks: dict[str, CheckResult] = Field(default_factory=dict)


class HealthRegistry:
    """The service's readiness checks.

    Args:
        default_timeout: seconds each check may take unless it says otherwise.
    """

    def __init__(self, default_timeout: float = 2.0) -> None:
        self.default_timeout = default_timeout
        self._checks: dict[str, HealthCheck] = {}
        self.log = get_logger("lms.health")

    def add(
        self, name: str, check: Check, *, timeout: float | None = None, critical: bool = True
    ) -> None:
        """Register a readiness check.

        Raises:
            ValueError: a check with that name exists, or the timeout is not positive.
        """
        if name in self._checks:
            raise ValueError(f"a health check named {name!r} is already registered")
        timeout = self.default_timeout if timeout is None else timeout
        if timeout <= 0:
            raise ValueError(f"a health check timeout must be positive, got {timeout}")
        self._checks[name] = HealthCheck(name, check, timeout, critical)

    def remove(self, name: str) -> None:
        """Unregister a check (a component that stopped)."""
        self._checks.pop(name, None)

    @property
    def names(self) -> list[str]:
        """The registered checks' names."""
        return list(self._checks)

    async def run(self) -> dict[str, CheckResult]:
        """Run every check concurrently, each under its timeout."""
        checks = list(self._checks.values())
        results = await asyncio.gather(*(self._run_one(c) for c in checks))
        return {c.name: r for c, r in zip(checks, results, strict=True)}

    async def _run_one(self, check: HealthCheck) -> CheckResult:
        started = time.perf_counter()
        status: Status = "pass"
        output: str | None = None
        try:
            async with asyncio.timeout(check.timeout):
                result = await check.check()
            if isinstance(result, str):
                output = result
        except TimeoutError:
            status, output = "fail", f"timed out after {check.timeout:g}s"
        except Exception as exc:
            status, output = "fail", f"{type(exc).__name__}: {exc}"[:300]
        if status == "fail":
            self.log.warning("health check failed", check=check.name, output=output)
            if not check.critical:
                status = "warn"
        duration = round((time.perf_counter() - started) * 1000, 3)
        return CheckResult(
            status=status, duration_ms=duration, critical=check.critical, output=output
        )


def _overall(results: dict[str, CheckResult]) -> Status:
    statuses = {r.status for r in results.values()}
    if "fail" in statuses:
        return "fail"
    return "warn" if "warn" in statuses else "pass"


def install_health(
    app: FastAPI, registry: HealthRegistry, state: RuntimeState, *, service: str, version: str
) -> None:
    """Add the ``/health/*`` routes to ``app``.

    They are added to the app's own router rather than included from a
    sub-router: FastAPI keeps an included router as a nested matcher that
    every later request walks through, which measurably slows every route.
    """
    router = app
    responses: dict[int | str, dict[str, Any]] = {
        503: {"model": HealthReport, "description": "not healthy"}
    }

    def answer(status: Status, checks: dict[str, CheckResult] | None = None) -> Response:
        report = HealthReport(status=status, service=service, version=version, checks=checks or {})
        return Response(
            orjson.dumps(report.model_dump(mode="json", exclude_none=True)),
            status_code=503 if status == "fail" else 200,
            media_type="application/json",
        )

    @router.get(
        "/health/live", response_model=HealthReport, summary="Liveness probe", tags=["health"]
    )
    async def live() -> Response:
        return answer("pass")

    @router.get(
        "/health/startup",
        response_model=HealthReport,
        responses=responses,
        summary="Startup probe",
        tags=["health"],
    )
    async def startup() -> Response:
        return answer("pass" if state.started else "fail")

    @router.get(
        "/health/ready",
        response_model=HealthReport,
        responses=responses,
        summary="Readiness",
        tags=["health"],
    )
    async def ready() -> Response:
        results = await registry.run()
        status = _overall(results)
        if not state.started or state.draining:
            status = "fail"
            reason = "shutting down" if state.draining else "starting"
            results["lifecycle"] = CheckResult(status="fail", duration_ms=0.0, output=reason)
        return answer(status, results)
