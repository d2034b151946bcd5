"""``POST /test``, the W3C Trace Context harness endpoint, over real sockets.

A callback server on loopback plays the harness: it records the headers of
every call the service makes and, like the harness, sends nested
instructions. The service runs on uvicorn too, so the calls cross real
connections with the chassis client.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from lms_shared import Service, create_service, load_settings
from lms_shared.client.trace_harness import MAX_CALLS, install_trace_harness
from lms_shared.errors import ConfigurationError


def harness() -> tuple[FastAPI, list[dict[str, Any]]]:
    app = FastAPI()
    seen: list[dict[str, Any]] = []

    @app.post("/callback/{name}")
    async def callback(name: str, request: Request) -> dict[str, bool]:
        seen.append({"name": name, "headers": dict(request.headers), "body": await request.json()})
        return {"ok": True}

    return app, seen


def traced_service(tmp_path: Path) -> Service:
    service = create_service("courses", "1.0.0", settings=load_settings(state_dir=str(tmp_path)))
    install_trace_harness(service)
    return service


async def test_each_call_continues_the_trace_with_a_new_parent_id(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    app, seen = harness()
    callbacks = await servers(app)
    service = await servers(traced_service(tmp_path).app, lifespan="on")
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    nested = [{"url": f"{callbacks.url}/callback/inner", "arguments": []}]
    body = [
        {"url": f"{callbacks.url}/callback/one", "arguments": nested},
        {"url": f"{callbacks.url}/callback/two?x=1", "arguments": []},
    ]
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/test", json=body, headers={"traceparent": parent, "tracestate": "foo=1,bar=2"}
        )
    assert response.status_code == 200, response.text
    assert [call["name"] for call in seen] == ["one", "two"]  # in order
    assert seen[0]["body"] == nested  # the arguments, as JSON
    ids = set()
    for call in seen:
        version, trace_id, parent_id, flags = call["headers"]["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01")
        assert parent_id != "b7ad6b7169203331"
        ids.add(parent_id)
        assert call["headers"]["tracestate"] == "foo=1,bar=2"
    assert len(ids) == 2  # a new parent id for each outgoing call


async def test_an_invalid_traceparent_restarts_the_trace_and_the_random_flag_is_kept(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    app, seen = harness()
    callbacks = await servers(app)
    service = await servers(traced_service(tmp_path).app, lifespan="on")
    call = [{"url": f"{callbacks.url}/callback/a", "arguments": []}]
    async with httpx.AsyncClient(base_url=service.url) as client:
        bad = await client.post(
            "/test",
            json=call,
            headers={"traceparent": "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"},
        )
        random = await client.post(
            "/test",
            json=call,
            headers={"traceparent": "00-12345678901234567890123456789012-1234567890123456-02"},
        )
    assert (bad.status_code, random.status_code) == (200, 200)
    restarted = seen[0]["headers"]["traceparent"].split("-")
    assert restarted[1] != "0af7651916cd43dd8448eb211c80319c"
    assert "tracestate" not in seen[0]["headers"]
    kept = seen[1]["headers"]["traceparent"].split("-")
    assert kept[1] == "12345678901234567890123456789012"
    assert int(kept[3], 16) & 0x02  # the random flag propagated (level 2)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([{"url": "ftp://127.0.0.1/x"}], "#/0/url"),
        ([{"url": "/relative"}], "#/0/url"),
        ([{"arguments": []}], "#/0/url"),
        ([{"url": "http://127.0.0.1/x", "arguments": "no"}], "#/0/arguments"),
        ([{"url": "http://127.0.0.1/" + "a" * 2100}], "#/0/url"),
        ([{"url": "http://127.0.0.1/x"}] * (MAX_CALLS + 1), "#"),
        ({"url": "http://127.0.0.1/x"}, "#"),
    ],
)
async def test_bad_instructions_are_problems_and_nothing_is_called(
    tmp_path: Path, body: Any, field: str, servers: Callable[..., Any]
) -> None:
    app, seen = harness()
    callbacks = await servers(app)
    if isinstance(body, list):  # valid elements name a real target: nothing may reach it
        body = [
            {**e, "url": e["url"].replace("http://127.0.0.1", callbacks.url)} if "url" in e else e
            for e in body
        ]
    service = traced_service(tmp_path)
    transport = httpx.ASGITransport(app=service.app)
    async with (
        service.app.router.lifespan_context(service.app),
        httpx.AsyncClient(transport=transport, base_url="http://courses") as client,
    ):
        response = await client.post("/test", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert [e["pointer"] for e in problem["errors"]] == [field], problem
    assert seen == []


def test_it_is_never_mounted_in_production(tmp_path: Path) -> None:
    service = create_service("courses", "1.0.0", settings=load_settings(state_dir=str(tmp_path)))
    service.settings = service.settings.model_copy(update={"env": "production"})
    with pytest.raises(ConfigurationError, match="not mounted in production"):
        install_trace_harness(service)
    assert "/test" not in {getattr(r, "path", None) for r in service.app.routes}
