"""``service.events``: built from LMS_EVENTS_URL, started and drained with the service,
its problems in the catalogue, its readiness checked, its dead letters served to admins."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lms_shared import Service, create_service, load_settings
from lms_shared.errors import ConfigurationError
from lms_shared.events import (
    TRANSPORTS,
    DeadLetter,
    MemoryTransport,
    Message,
    transport_from_url,
)
from lms_shared.events._log import LogTransport
from lms_shared.http.events import dead_letter_router
from lms_shared.redaction import Redactor
from lms_shared.testing import FakeIdentity, ManualClock, service_client
from lms_shared.testing._events import EventRecorder

from ._bus_models import CoursePublished


def make(**settings: Any) -> Service:
    return create_service("courses", "1.0.0", settings=load_settings(**settings))


def course() -> CoursePublished:
    return CoursePublished(course_id=uuid.uuid4(), title="Rust")


def test_the_url_picks_the_transport(tmp_path: Path) -> None:
    clock = ManualClock()
    assert isinstance(
        transport_from_url("memory://", clock=clock, state_dir=tmp_path), MemoryTransport
    )
    log = transport_from_url(None, clock=clock, state_dir=tmp_path)
    assert isinstance(log, LogTransport)
    assert log.name == "sqlite"
    with pytest.raises(ConfigurationError, match="no known transport"):
        transport_from_url("kafka://broker:9092", clock=clock, state_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="no known transport"):
        transport_from_url("not a url", clock=clock, state_dir=tmp_path)
    with pytest.raises(ConfigurationError) as caught:
        transport_from_url("kafka://user:hunter2@broker", clock=clock, state_dir=tmp_path)
    assert "hunter2" not in str(caught.value)  # the password is never echoed


def test_every_scheme_names_a_transport_class_and_bad_options_are_configuration_errors(
    tmp_path: Path,
) -> None:
    for scheme, (module_name, class_name, _) in TRANSPORTS.items():
        if importlib.util.find_spec(module_name) is None:
            continue  # a backend still being written
        assert hasattr(importlib.import_module(module_name), class_name), scheme
    clock = ManualClock()
    nats = transport_from_url("nats://127.0.0.1:4222", clock=clock, state_dir=tmp_path)
    assert nats.name == "nats"  # made, not connected
    with pytest.raises(ConfigurationError, match="LMS_EVENTS_URL"):
        transport_from_url(
            "nats://u:hunter2@127.0.0.1:4222?bogus=1", clock=clock, state_dir=tmp_path
        )


def test_a_bad_events_url_fails_when_the_bus_is_made() -> None:
    service = make(events_url="kafka://broker:9092")
    with pytest.raises(ConfigurationError, match="LMS_EVENTS_URL"):
        service.events  # noqa: B018


def test_the_bus_joins_the_catalogue_and_the_components_on_first_use() -> None:
    service = make(events_url="memory://")
    assert "events-unavailable" not in {code.slug for code in service.catalogue.values()}
    bus = service.events
    assert service.events is bus
    assert {"events-unavailable", "event-publish-failed", "invalid-event"} <= {
        code.slug for code in service.catalogue.values()
    }
    assert bus in service.lifecycle.components
    assert "events" in service.health.names
    assert bus.source == "/courses"
    assert bus.group == "courses"
    assert isinstance(bus.transport, MemoryTransport)


class RecordingTransport(MemoryTransport):
    """Records what the service was doing when the transport stopped."""

    def __init__(self, service: Service, log: list[str]) -> None:
        super().__init__(service.clock)
        self.service = service
        self.log = log

    async def stop(self) -> None:
        self.log.append(
            f"transport stops (draining={self.service.state.draining}, "
            f"inflight={self.service.state.inflight})"
        )
        await super().stop()


async def test_the_service_starts_the_bus_and_drains_http_then_handlers_then_the_transport() -> (
    None
):
    service = make(events_url="memory://")
    bus = service.events
    log: list[str] = []
    bus.transport = RecordingTransport(service, log)
    bus.publishes(CoursePublished)
    handler_running = asyncio.Event()
    release = asyncio.Event()

    @bus.subscribe(CoursePublished)
    async def slow(event: CoursePublished) -> None:
        handler_running.set()
        await release.wait()
        log.append("handler done")

    @service.router.get("/slow")
    async def slow_request() -> dict[str, str]:
        await release.wait()
        log.append("request done")
        return {"ok": "yes"}

    async with service_client(service) as client:
        assert bus.started
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert "events" in ready.text
        await bus.publish(course())
        await handler_running.wait()
        request = asyncio.create_task(client.get("/slow"))
        while service.state.inflight == 0:
            await asyncio.sleep(0.001)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, release.set)  # both finish once shutdown is waiting on them
    response = await request
    assert response.status_code == 200
    assert log[-1] == "transport stops (draining=True, inflight=0)"
    assert set(log[:2]) == {"request done", "handler done"}
    assert not bus.started


async def test_readiness_fails_while_the_broker_is_unreachable() -> None:
    service = make(events_url="memory://")
    bus = service.events
    async with service_client(service) as client:
        assert isinstance(bus.transport, MemoryTransport)
        bus.transport.reachable = False
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert "events" in response.text


async def test_two_services_talk_through_the_embedded_log(tmp_path: Path) -> None:
    courses = create_service("courses", "1", settings=load_settings(state_dir=tmp_path))
    grading = create_service("grading", "1", settings=load_settings(state_dir=tmp_path))
    courses.events.publishes(CoursePublished)
    got: list[str] = []

    @grading.events.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None:
        got.append(event.title)

    recorder = EventRecorder(grading.events)
    async with service_client(grading), service_client(courses):
        sent = await courses.events.publish(course())
        await recorder.settled(sent.id)
    assert got == ["Rust"]
    assert (tmp_path / "events.sqlite3").exists()


# -- the admin API ------------------------------------------------------------


def dead_letter(type: str, group: str) -> DeadLetter:
    return DeadLetter.create(
        Message(
            {
                "id": uuid.uuid4().hex,
                "source": "/courses",
                "specversion": "1.0",
                "type": type,
                "datacontenttype": "application/json",
                "schemaversion": "2",
            },
            b'{"course_id": "%s", "title": "t"}' % str(uuid.uuid4()).encode(),
        ),
        group=group,
        handler="h",
        reason="handler-failed",
        error="RuntimeError: boom",
        attempts=5,
        now=datetime.now(UTC),
        redactor=Redactor(),
    )


async def test_admins_list_show_replay_and_purge_dead_letters_over_http() -> None:
    service = make(events_url="memory://")
    bus = service.events
    bus.publishes(CoursePublished)
    replayed: list[str] = []

    @bus.subscribe(CoursePublished, group="search")
    async def index(event: CoursePublished) -> None:
        replayed.append(event.title)

    identity = FakeIdentity()
    identity.install(service)
    service.include(dead_letter_router(bus))
    letters = [dead_letter(CoursePublished.event_type(), "search") for _ in range(3)]
    other = dead_letter("lms.test.other", "mail")
    for item in [*letters, other]:
        await bus.dead_letters.add(item)
    admin = identity.headers("root", roles=["admin"])
    base = "/admin/events/dead-letters"
    recorder = EventRecorder(bus)
    async with service_client(service) as client:
        assert (await client.get(base)).status_code == 401
        student = identity.headers("sam", roles=["student"])
        assert (await client.get(base, headers=student)).status_code == 403

        page = (await client.get(base, headers=admin, params={"group": "search"})).json()
        assert page["total"] == 3
        assert len(page["items"]) == 3
        assert page["items"][0]["data_base64"]
        one = await client.get(f"{base}/{other.id}", headers=admin)
        assert one.status_code == 200
        assert one.json()["event_type"] == "lms.test.other"
        missing = await client.get(f"{base}/nope", headers=admin)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        naive = await client.get(base, headers=admin, params={"since": "2026-01-01T00:00:00"})
        assert naive.status_code == 422

        dry = await client.post(
            f"{base}/replay", headers=admin, json={"group": "search", "dry_run": True}
        )
        assert dry.json()["count"] == 3
        assert dry.json()["dry_run"] is True
        done = await client.post(
            f"{base}/replay", headers=admin, json={"group": "search", "limit": 2, "rate": 100}
        )
        assert done.status_code == 200, done.text
        assert done.json()["letter_ids"] == [x.id for x in letters[:2]]
        await recorder.wait_for(lambda o: sum(1 for x in o if x.result == "handled") == 2)
        assert replayed == ["t", "t"]

        refused = await client.delete(base, headers=admin)
        assert refused.status_code == 400
        purged = await client.delete(base, headers=admin, params={"group": "mail"})
        assert purged.json() == {"purged": 1}
        everything = await client.delete(base, headers=admin, params={"all": "true"})
        assert everything.json() == {"purged": 1}
        assert await bus.dead_letters.count() == 0
