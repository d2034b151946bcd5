"""Deadlines across a chain of three real services: A -> B -> C, on uvicorn, via discovery.

Each service is built with ``create_service`` (so ``DeadlineMiddleware``
runs), registers itself in one local registry and finds the next one
through ``service.client``. The budget a caller sends in
``x-lms-timeout-ms`` shrinks along the chain, a spent budget is a 504
without running anything, and a 200 ms budget ends all three hops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request

from lms_shared import Service, create_service, load_settings
from lms_shared.http.deadline import TIMEOUT_HEADER, deadline_scope, inbound_call
from lms_shared.resilience import DeadlineExceeded
from lms_shared.testing import ManualClock

from .conftest import Running, bind


def build(
    name: str, registry: str, port: int, calls: str | None, log: dict[str, list[Any]]
) -> Service:
    """Service ``name``: ``GET /chain`` reports its budget and calls ``calls`` next."""
    service = create_service(
        name,
        "1.0.0",
        settings=load_settings(
            discovery_url=registry,
            discovery_address="127.0.0.1",
            discovery_port=port,
            client_retries=0,
        ),
    )
    log[name] = []
    nxt = service.client(calls) if calls is not None else None

    @service.router.get("/chain")
    async def chain(request: Request, sleep: float = 0.0) -> dict[str, Any]:
        call = inbound_call()
        assert call is not None
        seen = {"header": request.headers.get(TIMEOUT_HEADER), "remaining": call.remaining()}
        log[name].append("started")
        try:
            if nxt is not None:
                seen["next"] = await nxt.get_json("/chain", params={"sleep": sleep})
            elif sleep:
                await asyncio.sleep(sleep)
        except asyncio.CancelledError:
            log[name].append("cancelled")
            raise
        except DeadlineExceeded:
            log[name].append("deadline")
            raise
        log[name].append("done")
        return seen

    return service


async def start_chain(
    servers: Callable[..., Any], tmp_path: Path
) -> tuple[Running, dict[str, list[Any]]]:
    registry = f"local://{tmp_path / 'registry.sqlite3'}"
    log: dict[str, list[Any]] = {}
    sockets = {name: bind() for name in ("a", "b", "c")}
    running = {}
    for name, calls in (("c", None), ("b", "c"), ("a", "b")):
        sock = sockets[name]
        service = build(name, registry, sock.getsockname()[1], calls, log)
        running[name] = await servers(service.app, lifespan="on", sock=sock)
    return running["a"], log


async def test_each_hop_sees_a_smaller_budget(servers: Callable[..., Any], tmp_path: Path) -> None:
    a, log = await start_chain(servers, tmp_path)
    async with httpx.AsyncClient(base_url=a.url) as http:
        response = await http.get("/chain", headers={TIMEOUT_HEADER: "3000"})

    assert response.status_code == 200, response.text
    at_a = response.json()
    at_b = at_a["next"]
    at_c = at_b["next"]
    assert at_a["header"] == "3000"
    assert 0 < int(at_c["header"]) < int(at_b["header"]) < 3000
    assert at_c["remaining"] < at_b["remaining"] < at_a["remaining"] <= 3.0
    assert log == {"a": ["started", "done"], "b": ["started", "done"], "c": ["started", "done"]}


async def test_without_a_header_the_service_hands_on_its_own_request_timeout(
    servers: Callable[..., Any], tmp_path: Path
) -> None:
    a, _ = await start_chain(servers, tmp_path)
    async with httpx.AsyncClient(base_url=a.url) as http:
        response = await http.get("/chain")

    at_b = response.json()["next"]
    # the client's own budget (LMS_CLIENT_TIMEOUT, 10 s) is below the 30 s request timeout
    assert 9000 < int(at_b["header"]) <= 10000


async def test_a_spent_budget_is_a_504_without_running_the_handler(
    servers: Callable[..., Any], tmp_path: Path
) -> None:
    a, log = await start_chain(servers, tmp_path)
    async with httpx.AsyncClient(base_url=a.url) as http:
        response = await http.get("/chain", headers={TIMEOUT_HEADER: "0"})
        malformed = await http.get("/chain", headers={TIMEOUT_HEADER: "soon"})

    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "deadline-exceeded"
    assert response.headers["x-request-id"]  # inside the request middleware
    assert malformed.status_code == 200  # ignored: the service's own timeout applies
    assert log["a"] == ["started", "done"]  # only the second request ran


async def test_a_200_ms_deadline_ends_all_three_hops(
    servers: Callable[..., Any], tmp_path: Path
) -> None:
    a, log = await start_chain(servers, tmp_path)
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as http:
        response = await http.get("/chain", params={"sleep": 60}, headers={TIMEOUT_HEADER: "200"})
    deadline = time.monotonic() + 10
    while "cancelled" not in log["c"] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)

    assert response.status_code == 504
    assert response.json()["code"] == "deadline-exceeded"
    assert log["c"] == ["started", "cancelled"]  # not left sleeping for a minute
    assert log["b"][0] == "started"
    assert "done" not in log["b"]
    assert log["a"][0] == "started"
    assert "done" not in log["a"]


async def test_a_call_with_no_time_left_is_not_sent() -> None:
    clock = ManualClock()
    service = create_service("a", "1.0.0", settings=load_settings(), clock=clock)
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    client = service.client("b", url="http://b.test", transport=httpx.MockTransport(record))
    with deadline_scope(0.5, clock=clock):
        await client.get_json("/x")
        await clock.advance(0.5)
        with pytest.raises(DeadlineExceeded) as spent:
            await client.get_json("/x")
    await service.clients.stop()

    assert len(sent) == 1
    assert sent[0].headers[TIMEOUT_HEADER] == "500"
    assert spent.value.status == 504
