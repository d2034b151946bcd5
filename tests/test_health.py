"""Liveness, readiness and startup probes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from lms_shared import FunctionComponent, Service
from lms_shared.http import HealthRegistry
from lms_shared.testing import service_client


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
    assert checks["broker"] == {
        "status": "pass",
        "critical": True,
        "output": "3 consumers",
        "duration_ms": checks["broker"]["duration_ms"],
    }
    assert checks["cache"]["status"] == "warn"
    assert checks["cache"]["output"] == "timed out after 0.3s"
    assert checks["search"]["output"] == "ConnectionRefusedError: search is down"
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
