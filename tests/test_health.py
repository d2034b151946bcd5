"""Liveness, readiness and startup probes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable
from typing import Any

import pytest

from lms_shared import ConfigurationError, FunctionComponent, Service
from lms_shared.errors import NotReady
from lms_shared.http import HealthRegistry
from lms_shared.testing import capture_logs, service_client


async def test_probes_pass_on_a_started_service(make_service: Callable[..., Service]) -> None:
    service = make_service()
    async with service_client(service) as client:
        live = await client.get("/health/live")
        startup = await client.get("/health/startup")
        ready = await client.get("/health/ready")
    assert live.status_code == startup.status_code == ready.status_code == 200
    assert ready.json() == {
        "status": "pass",
        "service": "courses",
        "version": "1.0.0",
        "checks": {},
    }


async def test_not_started_service_is_live_but_not_ready(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()
    async with service_client(service, start=False) as client:
        live = await client.get("/health/live")
        startup = await client.get("/health/startup")
        ready = await client.get("/health/ready")
    assert live.status_code == 200
    assert startup.status_code == 503
    assert ready.status_code == 503
    assert ready.json()["checks"]["lifecycle"]["output"] == "starting"


async def test_checks_run_concurrently_with_their_own_timeouts(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(health_check_timeout=0.3)
    calls: list[str] = []

    async def database() -> None:
        calls.append("database")
        await asyncio.sleep(0.1)

    async def broker() -> str:
        calls.append("broker")
        await asyncio.sleep(0.1)
        return "3 consumers"

    async def cache() -> None:
        await asyncio.sleep(10)

    async def search() -> None:
        raise ConnectionRefusedError("search is down")

    service.health.add("database", database)
    service.health.add("broker", broker)
    service.health.add("cache", cache, critical=False)
    service.health.add("search", search, critical=False)
    async with service_client(service) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await client.get("/health/ready")
        elapsed = loop.time() - started
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "warn"
    checks = report["checks"]
    assert checks["database"]["status"] == "pass"
    assert checks["broker"] == {  # what a passing check returns is for the log
        "status": "pass",
        "critical": True,
        "duration_ms": checks["broker"]["duration_ms"],
    }
    assert checks["cache"]["status"] == "warn"
    assert checks["cache"]["output"] == "timed out after 0.3s"
    assert checks["search"] == {  # the exception's text is for the log
        "status": "warn",
        "critical": False,
        "duration_ms": checks["search"]["duration_ms"],
    }
    assert sorted(calls) == ["broker", "database"]
    # concurrent: the whole report took about the slowest check, not the sum
    assert elapsed < 1.5


async def test_failing_critical_check_makes_the_service_unready(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()

    async def database() -> None:
        raise OSError("connection refused")

    service.health.add("database", database)
    async with service_client(service) as client:
        response = await client.get("/health/ready")
        live = await client.get("/health/live")
    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert response.json()["checks"]["database"]["status"] == "fail"
    assert live.status_code == 200


async def test_components_register_their_checks(make_service: Callable[..., Service]) -> None:
    service = make_service()
    state = {"up": False}

    async def start() -> None:
        state["up"] = True

    async def ping() -> None:
        if not state["up"]:
            raise RuntimeError("not started")

    service.add_component(FunctionComponent("cache", start=start))
    service.health.add("cache", ping)
    async with service_client(service) as client:
        response = await client.get("/health/ready")
    assert response.json()["checks"]["cache"]["status"] == "pass"


def test_registry_refuses_duplicates_and_bad_timeouts() -> None:
    registry = HealthRegistry()

    async def ok() -> None:
        return None

    registry.add("db", ok)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("db", ok)
    with pytest.raises(ValueError, match="positive"):
        registry.add("other", ok, timeout=0)
    registry.remove("db")
    assert registry.names == []


async def test_a_check_that_resists_cancellation_cannot_hold_the_probe(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()
    calls: list[str] = []
    release = asyncio.Event()
    ended = asyncio.Event()

    async def stubborn() -> None:
        calls.append("started")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:  # swallowed: it keeps going for up to 3 s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), 3)
        finally:
            ended.set()
        raise RuntimeError("failed late, at /srv/secret/path")

    unretrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    service.health.add("stubborn", stubborn, timeout=0.2)
    try:
        async with service_client(service) as client:
            started = loop.time()
            first = await client.get("/health/ready")
            second = await client.get("/health/ready")  # the first run still goes on
            elapsed = loop.time() - started
            release.set()
            await asyncio.wait_for(ended.wait(), 5)
            for _ in range(3):
                await asyncio.sleep(0)
        gc.collect()
    finally:
        loop.set_exception_handler(previous_handler)
    assert elapsed < 2.5  # not the 3 s the check keeps running (a bound, not a benchmark)
    for response in (first, second):
        assert response.status_code == 503
        assert response.json()["checks"]["stubborn"]["output"] == "timed out after 0.2s"
    assert calls == ["started"]  # no second copy piled up behind the stubborn one
    assert unretrieved == []  # its late exception was retrieved, nothing logs "never retrieved"


async def test_reports_name_states_and_the_log_has_the_reasons(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()

    async def socket() -> None:
        raise OSError("connection refused by /var/run/secret.sock")

    async def config() -> None:
        raise ConfigurationError("bad credentials in /etc/lms/keys.pem")

    async def waiting() -> None:
        raise NotReady("search: index still building")

    async def passing() -> str:
        return "sqlite at /home/someone/state/x.sqlite3"

    service.health.add("socket", socket)
    service.health.add("config", config)
    service.health.add("waiting", waiting)
    service.health.add("passing", passing)
    with capture_logs() as logs:
        async with service_client(service) as client:
            response = await client.get("/health/ready", headers={"x-request-id": "probe-42"})
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert {name: check["status"] for name, check in checks.items()} == {
        "socket": "fail",
        "config": "fail",
        "waiting": "fail",
        "passing": "pass",
    }
    assert checks["waiting"]["output"] == "search: index still building"  # written to be shown
    for name in ("socket", "config", "passing"):
        assert "output" not in checks[name]
    for secret in ("secret.sock", "keys.pem", "/home/someone", "OSError"):
        assert secret not in response.text
    failed = {line["check"]: line for line in logs.events("health check failed")}
    assert failed["socket"]["error"] == "OSError: connection refused by /var/run/secret.sock"
    assert failed["config"]["error"] == "ConfigurationError: bad credentials in /etc/lms/keys.pem"
    assert all(line["request_id"] == "probe-42" for line in failed.values())
    assert failed["socket"]["log_level"] == "warning"
    (passed,) = logs.events("health check passed")
    assert passed["output"] == "sqlite at /home/someone/state/x.sqlite3"
    assert passed["request_id"] == "probe-42"
    assert passed["log_level"] == "debug"
