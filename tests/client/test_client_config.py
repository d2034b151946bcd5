"""Per-target configuration from the settings and code, and the service-mesh mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lms_shared import SettingsError, create_service, load_settings
from lms_shared.client import ClientConfig, UpstreamUnavailable
from lms_shared.http.deadline import TIMEOUT_HEADER, deadline_scope
from lms_shared.resilience import RETRY_HOP_HEADER
from lms_shared.testing import lifespan

from .conftest import instance_app


def test_settings_give_each_target_its_knobs() -> None:
    settings = load_settings(
        client_timeout=4,
        client_retries=1,
        client_targets={"grading": {"timeout": 2, "retries": 0, "hedge_delay": 0.05}},
    )
    grading = ClientConfig.from_settings(settings, "grading")
    identity = ClientConfig.from_settings(settings, "identity")

    assert (grading.timeout, grading.retries, grading.hedge_delay) == (2.0, 0, 0.05)
    assert (identity.timeout, identity.retries, identity.attempts) == (4.0, 1, 2)


def test_bad_knobs_are_refused_with_their_name() -> None:
    with pytest.raises(SettingsError) as bad_setting:
        load_settings(client_targets={"grading": {"retries": 99}})
    with pytest.raises(SettingsError) as typo:
        load_settings(client_targets={"grading": {"timout": 2}})
    service = create_service("courses", "1.0.0", settings=load_settings())
    with pytest.raises(TypeError, match="timout"):
        service.client("grading", timout=2)
    with pytest.raises(ValueError, match="timeout"):
        service.client("grading", timeout=-1)
    with pytest.raises(ValueError, match="DNS label"):
        service.client("Grading")
    first = service.client("grading", timeout=2.0)
    assert service.client("grading") is first
    assert service.client("grading", timeout=2.0) is first
    with pytest.raises(ValueError, match="other options"):
        service.client("grading", timeout=3.0)

    assert "LMS_CLIENT_TARGETS" in str(bad_setting.value)
    assert "LMS_CLIENT_TARGETS" in str(typo.value)


@pytest.mark.parametrize(
    ("namespace", "url"),
    [(None, "http://grading"), ("lms", "http://grading.lms.svc.cluster.local")],
)
def test_under_a_mesh_the_client_calls_the_dns_name(namespace: str | None, url: str) -> None:
    for mesh in ("istio", "linkerd"):
        settings = load_settings(client_mesh=mesh, client_mesh_namespace=namespace)
        config = ClientConfig.from_settings(settings, "grading")
        assert config.base_url("grading") == url
        assert config.attempts == 1  # the sidecar retries; the client never does
    assert ClientConfig().base_url("grading") is None  # without a mesh: discovery


async def test_under_a_mesh_nothing_is_retried_but_headers_and_deadline_go_on(
    servers: Callable[..., Any],
) -> None:
    app, counter = instance_app("only")
    server = await servers(app)
    service = create_service(
        "shop",
        "1.0.0",
        settings=load_settings(
            client_mesh="istio",
            client_retries=3,
            client_targets={"inventory": {"url": server.url, "hedge_delay": 0.01}},
        ),
    )
    client = service.client("inventory")
    async with lifespan(service.app):
        with pytest.raises(UpstreamUnavailable):
            await client.get_json("/unavailable")
        with deadline_scope(1.5, clock=service.clock):
            await client.get_json("/whoami")

    assert counter.hits == 2  # once each: no retry, no hedge
    sent = counter.seen[-1]
    assert 0 < int(sent[TIMEOUT_HEADER]) <= 1500
    assert RETRY_HOP_HEADER not in sent  # this hop does not retry
    assert client.hedge is None
    assert client.retry is None
    assert service.lifecycle.components[-1].name == "clients"  # no discovery was needed


async def test_a_fixed_url_needs_no_discovery() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    service = create_service("shop", "1.0.0", settings=load_settings())
    client = service.client(
        "payments", url="https://payments.example/", transport=httpx.MockTransport(answer)
    )
    assert await client.get_json("/v1/health") == {"ok": True}
    await service.clients.stop()
    assert str(seen[0].url) == "https://payments.example/v1/health"
    names = [c.name for c in service.lifecycle.components]
    assert "clients" in names
    assert not any(name.startswith("discovery") for name in names)  # no registry was needed


def test_a_targets_breaker_knobs_come_from_the_settings() -> None:
    settings = load_settings(
        client_targets={
            "courses": {"breaker": {"minimum_number_of_calls": 3, "wait_duration_in_open_state": 2}}
        }
    )
    service = create_service("enrollments", "1.0.0", settings=settings)
    courses = service.client("courses", url="http://courses.test").breaker.config
    other = service.client("identity", url="http://identity.test").breaker.config
    assert (courses.minimum_number_of_calls, courses.wait_duration_in_open_state) == (3, 2)
    assert courses.failure_rate_threshold == other.failure_rate_threshold  # the rest as default
    assert other.minimum_number_of_calls != 3


def test_impossible_breaker_knobs_name_the_setting() -> None:
    for knobs in (
        {"minimum_number_of_calls": 0},
        {"failure_rate_threshold": 150},
        {"wait_duration_in_open_state": -1},
        {"no_such_knob": 1},
    ):
        with pytest.raises(SettingsError, match="LMS_CLIENT_TARGETS"):
            load_settings(client_targets={"courses": {"breaker": knobs}})
