"""Health endpoints: liveness, readiness and startup probes.

* ``GET /health/live``: the process answers (event loop responsive).
* ``GET /health/startup``: every component has started.
* ``GET /health/ready``: started, not draining, and every critical check
  passes. Checks run concurrently, each bounded by its own timeout (the
  probe answers when it expires, whatever the check does); the report
  gives each check's status and duration. Components register their own
  checks (``service.health.add("database", db.ping)``).

A failing probe answers 503 with the same report, so orchestrators and
people read the same thing. Probes are public, so a report names checks
and states only: a failed check's ``output`` is ``"timed out after Ns"`` or
the message of a :class:`~lms_shared.errors.NotReady` it raised (a reason
written to be shown); anything else it raised, and what a passing check
returned, goes to the log (``lms.health``, with the request id) only.
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

from lms_shared.errors import NotReady
from lms_shared.http.state import RuntimeState
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
            logged at debug level, not shown), raising means fail (only a
            :class:`~lms_shared.errors.NotReady` message is shown).
        timeout: seconds before the check counts as failed; the probe
            answers then even if the check ignores its cancellation.
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
    output: str | None = Field(
        None,
        description="why it failed, when that is safe to show: a timeout or a not-ready reason",
    )


class HealthReport(BaseModel):
    """What the health endpoints answer."""

    status: Status
    service: str
    version: str
    checks: dict[str, CheckResult] = Field(default_factory=dict)


class HealthRegistry:
    """The service's readiness checks.

    Each check runs as its own task; the probe waits for it at most its
    timeout, then answers. A check still running then is cancelled in the
    background and never awaited by the probe, so a check that ignores
    cancellation (a driver call blocked in a thread) cannot hold the probe
    past its timeout; while it still runs, later probes report it timed out
    at once instead of starting another copy.

    Args:
        default_timeout: seconds each check may take unless it says otherwise.
    """

    def __init__(self, default_timeout: float = 2.0) -> None:
        self.default_timeout = default_timeout
        self._checks: dict[str, HealthCheck] = {}
        self._overdue: dict[str, asyncio.Task[object]] = {}
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
        """Run every check concurrently, each bounded by its timeout."""
        checks = list(self._checks.values())
        results = await asyncio.gather(*(self._run_one(c) for c in checks))
        return {c.name: r for c, r in zip(checks, results, strict=True)}

    async def _run_one(self, check: HealthCheck) -> CheckResult:
        started = time.perf_counter()
        overdue = self._overdue.get(check.name)
        if overdue is not None and not overdue.done():
            # the last run outlived its timeout and still runs: no second copy
            self.log.warning("health check failed", check=check.name, error="still running")
            return self._result(check, started, f"timed out after {check.timeout:g}s")
        task: asyncio.Task[object] = asyncio.create_task(
            _call(check.check), name=f"health check {check.name}"
        )
        try:
            done, _ = await asyncio.wait({task}, timeout=check.timeout)
        finally:
            if not task.done():  # timed out, or the probe itself was cancelled
                self._abandon(check.name, task)
        if not done:
            self.log.warning("health check failed", check=check.name, error="timed out")
            return self._result(check, started, f"timed out after {check.timeout:g}s")
        exc = task.exception()
        if exc is None:
            result = task.result()
            if isinstance(result, str):
                self.log.debug("health check passed", check=check.name, output=result)
            return self._result(check, started, None, passed=True)
        # the body names the state only; the reason goes to the log (with the
        # request id), except for reasons written for everyone to read
        self.log.warning(
            "health check failed", check=check.name, error=f"{type(exc).__name__}: {exc}"
        )
        return self._result(check, started, str(exc)[:300] if isinstance(exc, NotReady) else None)

    def _abandon(self, name: str, task: asyncio.Task[object]) -> None:
        task.cancel()
        self._overdue[name] = task  # a strong reference until it really ends

        def finished(done: asyncio.Task[object]) -> None:
            if self._overdue.get(name) is done:
                del self._overdue[name]
            error = None if done.cancelled() else done.exception()  # retrieved: not logged
            self.log.debug("overdue health check ended", check=name, error=repr(error))

        task.add_done_callback(finished)

    @staticmethod
    def _result(
        check: HealthCheck, started: float, output: str | None, *, passed: bool = False
    ) -> CheckResult:
        status: Status = "pass" if passed else "fail" if check.critical else "warn"
        duration = round((time.perf_counter() - started) * 1000, 3)
        return CheckResult(
            status=status, duration_ms=duration, critical=check.critical, output=output
        )


async def _call(check: Check) -> object:
    return await check()


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
