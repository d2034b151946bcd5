"""Prometheus metrics of a service: names, labels, bounds, the API the chassis calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lms_shared import Service, create_service, load_settings
from lms_shared.errors import NotReady, SettingsError
from lms_shared.observability import HTTP_BUCKETS, Metrics, MetricsConfig, slo_buckets
from lms_shared.testing import ManualClock, capture_logs, service_client

DURATION = "http_server_request_duration_seconds"


def build(clock: ManualClock | None = None, **settings: object) -> Service:
    service = create_service("courses", "1.4.0", settings=load_settings(**settings), clock=clock)

    @service.router.get("/v1/courses/{course_id}")
    async def course(course_id: str) -> dict[str, str]:
        return {"id": course_id}

    @service.router.get("/v1/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(0.05)
        return {"ok": True}

    @service.router.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    return service


def samples(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample called ``name`` in an exposition, by its label set."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[frozenset(sample.labels.items())] = sample.value
    return found


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


async def test_requests_are_counted_by_method_route_template_and_status() -> None:
    service = build()
    async with service_client(service) as client:
        for course in ("a", "b", "c"):
            assert (await client.get(f"/v1/courses/{course}")).status_code == 200
        assert (await client.post("/v1/courses/a")).status_code == 405
        assert (await client.get("/v1/boom")).status_code == 500
        text = await scrape(client)
    counts = samples(text, f"{DURATION}_count")
    route = "/v1/courses/{course_id}"
    get = labels(http_request_method="GET", http_route=route, http_response_status_code="200")
    assert counts[get] == 3
    assert (
        counts[
            labels(
                http_request_method="GET", http_route="/v1/boom", http_response_status_code="500"
            )
        ]
        == 1
    )
    # no raw path anywhere in a label
    assert all("/v1/courses/a" not in value for key in counts for _, value in key)
    # the OpenTelemetry advice's buckets, +Inf included
    buckets = {
        dict(k)["le"]
        for k in samples(text, f"{DURATION}_bucket")
        if dict(k).get("http_route") == route
    }
    assert buckets == {*(str(b) for b in HTTP_BUCKETS), "+Inf"}
    assert samples(text, "target_info") == {
        labels(service_name="courses", service_version="1.4.0"): 1
    }


async def test_a_thousand_raw_paths_make_one_series_per_template() -> None:
    service = build()
    async with service_client(service) as client:
        for n in range(1000):
            await client.get(f"/v1/courses/{n}")
            await client.get(f"/nowhere/{n}")  # no route: the one "unmatched" series
        text = await scrape(client)
    counts = samples(text, f"{DURATION}_count")
    ours = {k: v for k, v in counts.items() if dict(k)["http_route"] != "/metrics"}
    assert ours == {
        labels(
            http_request_method="GET",
            http_route="/v1/courses/{course_id}",
            http_response_status_code="200",
        ): 1000,
        labels(
            http_request_method="GET", http_route="unmatched", http_response_status_code="404"
        ): 1000,
    }


async def test_unknown_methods_are_one_other_series() -> None:
    service = build()
    async with service_client(service) as client:
        for method in ("BREW", "WHEN", "PROPFIND"):
            await client.request(method, "/v1/courses/a")
        text = await scrape(client)
    methods = {dict(k)["http_request_method"] for k in samples(text, f"{DURATION}_count")}
    assert methods == {"_OTHER"}  # a scrape is counted once it has answered


def test_every_family_keeps_at_most_max_series_label_sets() -> None:
    metrics = Metrics("courses", "1", MetricsConfig(max_series=3))
    with capture_logs() as logs:
        for n in range(10):
            metrics.client_call(f"dependency-{n}", "GET", 200, 0.01)
    body, _ = metrics.render()
    calls = samples(body.decode(), "http_client_request_duration_seconds_count")
    assert len(calls) == 4  # three real ones and the overflow
    assert (
        calls[
            labels(
                server_address="_OTHER",
                http_request_method="_OTHER",
                http_response_status_code="_OTHER",
                error_type="_OTHER",
            )
        ]
        == 7
    )
    assert (
        len(logs.events("metric series cap reached; further label sets are counted as _OTHER")) == 1
    )


def test_slo_buckets_include_the_threshold_and_refuse_nonsense() -> None:
    assert 0.3 in slo_buckets(0.3)
    assert slo_buckets(0.25) == HTTP_BUCKETS  # already a boundary
    assert slo_buckets(None, [1, 0.5, 0.5]) == (0.5, 1.0)
    for bad in ([0.0], [-1.0], [float("inf")], [float("nan")], []):
        with pytest.raises(ValueError, match="positive finite"):
            slo_buckets(None, bad)


async def test_latency_threshold_setting_adds_a_bucket() -> None:
    service = build(metrics_latency_threshold=0.3, metrics_buckets=[0.1, 1.0])
    assert service.metrics.config.buckets == (0.1, 0.3, 1.0)
    async with service_client(service) as client:
        await client.get("/v1/courses/a")
        text = await scrape(client)
    buckets = {dict(k)["le"] for k in samples(text, f"{DURATION}_bucket")}
    assert buckets == {"0.1", "0.3", "1.0", "+Inf"}


def test_bucket_settings_are_checked() -> None:
    with pytest.raises(SettingsError, match="LMS_METRICS_BUCKETS"):
        load_settings(metrics_buckets=[0.1, -2])
    with pytest.raises(SettingsError, match="LMS_SLOW_REQUEST_THRESHOLD"):
        load_settings(slow_request_threshold=-1)


async def test_slow_requests_log_one_line_with_the_request_id() -> None:
    service = build(slow_request_threshold=0.01)
    async with service_client(service) as client:
        with capture_logs() as logs:
            slow = await client.get("/v1/slow")
            await client.get("/v1/courses/a")  # fast: no line
    [line] = logs.events("slow request")
    assert line["route"] == "/v1/slow"
    assert line["status"] == 200
    assert line["duration_ms"] >= 50
    assert line["threshold_ms"] == 10
    assert line["request_id"] == slow.headers["x-request-id"]
    assert line["log_level"] == "warning"


async def test_no_slow_line_under_the_threshold_or_when_off() -> None:
    for threshold in (60.0, 0.0):
        service = build(slow_request_threshold=threshold)
        async with service_client(service) as client:
            with capture_logs() as logs:
                await client.get("/v1/slow")
        assert logs.events("slow request") == []


async def test_metrics_route_is_not_in_openapi_nor_rate_limited() -> None:
    service = build(ratelimit_default="1/minute")
    async with service_client(service) as client:
        assert (await client.get("/v1/courses/a")).status_code == 200
        assert (await client.get("/v1/courses/a")).status_code == 429
        for _ in range(3):
            await scrape(client)
    assert "/metrics" not in service.app.openapi()["paths"]


async def test_openmetrics_when_the_scraper_asks() -> None:
    service = build()
    async with service_client(service) as client:
        response = await client.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_metrics_disabled_serves_no_route_and_measures_nothing() -> None:
    service = build(metrics_enabled=False)
    async with service_client(service) as client:
        await client.get("/v1/courses/a")
        assert (await client.get("/metrics")).status_code == 404
    assert (
        service.metrics.value(
            f"{DURATION}_count",
            {
                "http_request_method": "GET",
                "http_route": "/v1/courses/{course_id}",
                "http_response_status_code": "200",
            },
        )
        is None
    )


async def test_readiness_gauge_follows_probes_and_scrapes(clock: ManualClock) -> None:
    service = build(clock=clock)
    healthy = True

    async def check() -> None:
        if not healthy:
            raise NotReady("the database is away")

    service.health.add("database", check)
    async with service_client(service) as client:
        assert samples(await scrape(client), "lms_health_ready") == {frozenset(): 1}
        healthy = False
        # the last result is fresh: the scrape reuses it, the probe updates it
        assert samples(await scrape(client), "lms_health_ready") == {frozenset(): 1}
        assert (await client.get("/health/ready")).status_code == 503
        assert samples(await scrape(client), "lms_health_ready") == {frozenset(): 0}
        healthy = True
        await clock.advance(service.metrics.config.readiness_max_age)
        # no probe since: the scrape runs the checks itself
        assert samples(await scrape(client), "lms_health_ready") == {frozenset(): 1}


async def test_breakers_of_called_services_publish_their_state() -> None:
    service = build()
    async with service_client(service) as client:
        breaker = service.clients.breakers.get("identity")
        service.clients.breakers.get("identity", "10.0.0.7:8000")  # instances are not published
        closed = samples(await scrape(client), "lms_circuit_breaker_state")
        breaker.transition_to_open_state()
        opened = samples(await scrape(client), "lms_circuit_breaker_state")
    assert closed[labels(breaker="identity", state="closed")] == 1
    assert closed[labels(breaker="identity", state="open")] == 0
    assert opened[labels(breaker="identity", state="closed")] == 0
    assert opened[labels(breaker="identity", state="open")] == 1
    assert {dict(k)["breaker"] for k in opened} == {"identity"}
    assert len(opened) == 6  # one series per state


@dataclass
class Stats:
    size: int = 5
    max_overflow: int = 10
    in_use: int = 0
    idle: int = 0
    waits: int = 0
    timeouts: int = 0


def test_pools_are_read_when_scraped_and_their_counters_only_grow() -> None:
    metrics = Metrics("courses", "1")
    stats = Stats(in_use=2, idle=3, waits=4, timeouts=1)
    metrics.track_pool("primary", lambda: stats)
    pool = {"db_client_connection_pool_name": "primary"}

    def read() -> dict[frozenset[tuple[str, str]], float]:
        text = metrics.render()[0].decode()
        found = {}
        for name in (
            "db_client_connection_count",
            "db_client_connection_max",
            "db_client_connection_timeouts_total",
            "lms_db_client_connection_waits_total",
        ):
            for key, value in samples(text, name).items():
                found[frozenset({*key, ("name", name)})] = value
        return found

    first = read()
    assert (
        first[
            frozenset(
                {
                    *pool.items(),
                    ("db_client_connection_state", "used"),
                    ("name", "db_client_connection_count"),
                }
            )
        ]
        == 2
    )
    assert (
        first[
            frozenset(
                {
                    *pool.items(),
                    ("db_client_connection_state", "idle"),
                    ("name", "db_client_connection_count"),
                }
            )
        ]
        == 3
    )
    assert first[frozenset({*pool.items(), ("name", "db_client_connection_max")})] == 15
    assert first[frozenset({*pool.items(), ("name", "db_client_connection_timeouts_total")})] == 1
    stats.timeouts, stats.waits, stats.in_use = 3, 4, 0
    second = read()
    assert second[frozenset({*pool.items(), ("name", "db_client_connection_timeouts_total")})] == 3
    assert second[frozenset({*pool.items(), ("name", "lms_db_client_connection_waits_total")})] == 4
    assert (
        second[
            frozenset(
                {
                    *pool.items(),
                    ("db_client_connection_state", "used"),
                    ("name", "db_client_connection_count"),
                }
            )
        ]
        == 0
    )


def test_a_pool_that_cannot_say_is_skipped() -> None:
    metrics = Metrics("courses", "1")

    def broken() -> Stats:
        raise RuntimeError("not open")

    metrics.track_pool("primary", broken)
    assert b"db_client_connection_count{" not in metrics.render()[0]


async def test_the_service_database_pool_is_published(make_service: Callable[..., Service]) -> None:
    service = make_service()
    service.db  # noqa: B018 - made on first use, with its pool tracked
    async with service_client(service) as client:
        async with service.db.transaction():
            pass
        text = await scrape(client)
    states = {
        dict(k)["db_client_connection_state"] for k in samples(text, "db_client_connection_count")
    }
    assert states == {"used", "idle"}


@dataclass
class Outcome:
    group: str
    event_type: str
    result: str


def test_event_bus_figures() -> None:
    metrics = Metrics("grading", "1")
    metrics.event("published", "lms.enrollment.created")
    metrics.event("published", "lms.enrollment.created", count=2)
    metrics.event("dead_lettered", "lms.enrollment.created", "grading", count=0)  # declared
    for result in ("handled", "handled", "retry", "dead", "kept", "duplicate", "skipped"):
        metrics.delivery(Outcome("grading", "lms.enrollment.created", result))
    metrics.consumer_lag("lms.enrollment.created", "grading", 42)
    text = metrics.render()[0].decode()
    key = labels(
        messaging_destination_name="lms.enrollment.created", messaging_consumer_group_name="grading"
    )
    assert samples(text, "messaging_client_sent_messages_total") == {
        labels(
            messaging_destination_name="lms.enrollment.created", messaging_consumer_group_name=""
        ): 3
    }
    assert samples(text, "messaging_client_consumed_messages_total") == {key: 2}
    assert samples(text, "lms_messaging_failed_messages_total") == {key: 2}  # retry, kept
    assert samples(text, "lms_messaging_retried_messages_total") == {key: 1}
    assert samples(text, "lms_messaging_dead_lettered_messages_total") == {key: 1}
    assert samples(text, "lms_messaging_consumer_lag_messages") == {key: 42}


def test_client_calls_by_dependency_and_error_type() -> None:
    metrics = Metrics("enrollments", "1")
    metrics.client_call("identity", "GET", 200, 0.02)
    metrics.client_call("identity", "GET", 503, 0.2)
    metrics.client_call("courses", "POST", None, 5.0, error="timeout")
    text = metrics.render()[0].decode()
    counts = samples(text, "http_client_request_duration_seconds_count")
    assert counts == {
        labels(
            server_address="identity",
            http_request_method="GET",
            http_response_status_code="200",
            error_type="",
        ): 1,
        labels(
            server_address="identity",
            http_request_method="GET",
            http_response_status_code="503",
            error_type="503",
        ): 1,
        labels(
            server_address="courses",
            http_request_method="POST",
            http_response_status_code="",
            error_type="timeout",
        ): 1,
    }


async def test_event_loop_lag_is_sampled_while_started() -> None:
    metrics = Metrics("courses", "1", MetricsConfig(loop_lag_interval=0.02))
    await metrics.start()
    try:
        while (metrics.value("lms_event_loop_lag_seconds_count") or 0) < 1:
            await asyncio.sleep(0.01)
        time.sleep(0.3)  # noqa: ASYNC251 - block the loop on purpose: the next sample is at least this late
        before = metrics.value("lms_event_loop_lag_seconds_count") or 0
        while (metrics.value("lms_event_loop_lag_seconds_count") or 0) <= before:
            await asyncio.sleep(0.01)
    finally:
        await metrics.stop()
    assert (metrics.value("lms_event_loop_lag_seconds_sum") or 0) >= 0.25
    assert metrics.value("lms_event_loop_lag_seconds_bucket", {"le": "0.25"}) is not None
    stopped = metrics.value("lms_event_loop_lag_seconds_count")
    await asyncio.sleep(0.1)
    assert metrics.value("lms_event_loop_lag_seconds_count") == stopped


async def test_process_figures_are_exposed() -> None:
    service = build()
    async with service_client(service) as client:
        text = await scrape(client)
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= names


def test_two_services_in_one_process_keep_their_own_figures() -> None:
    one, two = Metrics("courses", "1"), Metrics("grading", "1")
    one.client_call("identity", "GET", 200, 0.1)
    call = {
        "server_address": "identity",
        "http_request_method": "GET",
        "http_response_status_code": "200",
        "error_type": "",
    }
    assert one.value("http_client_request_duration_seconds_count", call) == 1
    assert two.value("http_client_request_duration_seconds_count", call) is None
