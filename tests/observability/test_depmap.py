"""The dependency map: declared edges from the registry, observed ones from traces, drift."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from typer.testing import CliRunner

from lms_shared import Service, create_service, load_settings
from lms_shared.cli._app import app as cli
from lms_shared.events import Event
from lms_shared.observability._depmap import (
    CALLS,
    Declarations,
    DependencyMap,
    Edge,
    observed_edges,
)
from lms_shared.observability._processor import BoundedBatchProcessor
from lms_shared.testing import service_client
from lms_shared.testing._events import EventRecorder


class Enrolled(Event, type="lms.test.map.enrolled"):
    """Somebody enrolled."""

    user: str


def test_spans_become_edges_and_others_are_ignored() -> None:
    spans: list[dict[str, Any]] = [
        {"service": "grading", "kind": "client", "attributes": {"peer.service": "enrollments"}},
        {"service": "grading", "kind": "client", "attributes": {"peer.service": "enrollments"}},
        {
            "service": "courses",
            "kind": "producer",
            "attributes": {"messaging.destination.name": "lms.course.published"},
        },
        {
            "service": "enrollments",
            "kind": "consumer",
            "attributes": {"messaging.destination.name": "lms.course.published"},
        },
        {"service": "courses", "kind": "server", "attributes": {"peer.service": "x"}},
        {
            "service": "courses",
            "kind": "producer",
            "attributes": {"messaging.destination.name": "batch"},
        },
        {"service": 7, "kind": "client", "attributes": {"peer.service": "x"}},
        {"service": "a", "kind": "client", "attributes": "not a mapping"},
    ]
    assert observed_edges(spans) == Counter(
        {
            Edge("calls", "grading", "enrollments"): 2,
            Edge("publishes", "courses", "lms.course.published"): 1,
            Edge("consumes", "lms.course.published", "enrollments"): 1,
        }
    )


def test_drift_both_ways_and_services_that_declare_nothing_are_not_judged() -> None:
    declared = [
        Declarations("grading", calls=frozenset({"enrollments", "identity"})),
        Declarations("enrollments", consumes=frozenset({"lms.course.published"})),
    ]
    observed = Counter(
        {
            Edge("calls", "grading", "enrollments"): 3,
            Edge("calls", "grading", "courses"): 1,  # nobody declared it
            Edge("consumes", "lms.course.published", "enrollments"): 2,
            Edge("calls", "reports", "grading"): 1,  # reports declares nothing
        }
    )
    found = DependencyMap.build(declared, observed)
    assert found.undeclared() == [Edge("calls", "grading", "courses")]
    assert found.unused() == [Edge("calls", "grading", "identity")]
    assert found.state(Edge("calls", "reports", "grading")) == "observed"
    assert found.state(Edge("calls", "grading", "enrollments")) == "ok"
    assert found.services == ["courses", "enrollments", "grading", "identity", "reports"]
    assert found.events == ["lms.course.published"]
    data = found.to_json()
    assert data["drift"] == {
        "undeclared": [{"kind": "calls", "source": "grading", "target": "courses"}],
        "unused": [{"kind": "calls", "source": "grading", "target": "identity"}],
    }
    assert json.loads(json.dumps(data)) == data
    mermaid = found.to_mermaid()
    assert mermaid.startswith("flowchart LR\n")
    assert '-.->|"calls: undeclared"|' in mermaid
    assert '-.->|"calls: unused"|' in mermaid
    assert mermaid.count("-->") == 3  # ok and merely observed edges are solid
    dot = found.to_dot()
    assert dot.startswith("digraph lms {")
    assert '"svc:grading" -> "svc:courses" [label="calls (undeclared)", style=dashed' in dot
    assert '"evt:lms.course.published" -> "svc:enrollments" [label="consumes"];' in dot


def test_instances_of_one_service_add_up_and_metadata_is_bounded() -> None:
    many = Declarations("grading", calls=frozenset(f"service-{n:04d}" for n in range(500)))
    metadata = many.metadata()
    assert len(metadata[CALLS]) <= 1024  # a registration's value bound
    back = Declarations.from_metadata("grading", metadata)
    assert back.calls < many.calls
    assert Declarations.from_metadata("x", {CALLS: " a, ,b,,"}).calls == {"a", "b"}
    merged = DependencyMap.build(
        [
            Declarations("grading", calls=frozenset({"a"})),
            Declarations("grading", calls=frozenset({"b"})),
        ],
        {},
    )
    assert merged.declared["grading"].calls == {"a", "b"}


def test_labels_are_escaped_in_every_format() -> None:
    odd = 'lms.odd"type\\x'
    found = DependencyMap.build([Declarations("svc", publishes=frozenset({odd}))], {})
    assert "#quot;" in found.to_mermaid()
    assert json.dumps(odd) in found.to_dot()


def build(tmp_path: Path, name: str, port: int, **extra: Any) -> Service:
    settings = load_settings(
        state_dir=str(tmp_path),
        discovery_address="127.0.0.1",
        discovery_port=port,
        events_url="memory://",
        **extra,
    )
    return create_service(name, "1.0.0", settings=settings)


async def test_the_cli_draws_the_platform_from_registrations_and_traces(tmp_path: Path) -> None:
    enrollments = build(tmp_path, "enrollments", 18002)
    bus = enrollments.events
    bus.publishes(Enrolled)

    @bus.subscribe(Enrolled, group="enrollments")
    async def count(event: Enrolled) -> None:
        return None

    @enrollments.router.post("/v1/enrollments")
    async def enroll() -> dict[str, str]:
        await bus.publish(Enrolled(user="ada"))
        return {"ok": "yes"}

    courses = FastAPI()

    @courses.get("/v1/courses/c1")
    async def course() -> dict[str, str]:
        return {"id": "c1"}

    grading = build(tmp_path, "grading", 18003)
    upstream = grading.client(
        "enrollments",
        url="http://enrollments.test",
        transport=httpx.ASGITransport(app=enrollments.app),
    )
    grading.depends_on("identity")  # declared, never called

    @grading.router.post("/v1/grades")
    async def grade() -> dict[str, str]:
        await upstream.post_json("/v1/enrollments", {})
        late = grading.client(  # made on the fly: not among the declarations
            "courses", url="http://courses.test", transport=httpx.ASGITransport(app=courses)
        )
        await late.get_json("/v1/courses/c1")
        return {"ok": "yes"}

    recorder = EventRecorder(bus)
    map_path, mermaid, dot = tmp_path / "map.json", tmp_path / "map.mmd", tmp_path / "map.dot"
    async with service_client(enrollments), service_client(grading) as client:
        response = await client.post("/v1/grades")
        assert response.status_code == 200, response.text
        await recorder.wait_for(lambda outcomes: any(o.result == "handled" for o in outcomes))
        for service in (enrollments, grading):  # the batch exporters, now
            processor = service.tracing.processor
            assert isinstance(processor, BoundedBatchProcessor)
            await asyncio.to_thread(processor.export_pending)
        # while they run, both are registered with their declarations
        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            ["map", "--json", str(map_path), "--mermaid", str(mermaid), "--dot", str(dot)],
            env={"LMS_STATE_DIR": str(tmp_path)},
        )
    assert result.exit_code == 0, result.output
    data = json.loads(map_path.read_text())
    states = {(e["kind"], e["source"], e["target"]): e["state"] for e in data["edges"]}
    assert states == {
        ("calls", "grading", "enrollments"): "ok",
        ("calls", "grading", "identity"): "unused",  # declared, never called
        ("calls", "grading", "courses"): "undeclared",  # a client made on the fly
        ("publishes", "enrollments", "lms.test.map.enrolled"): "ok",
        ("consumes", "lms.test.map.enrolled", "enrollments"): "ok",
    }
    assert mermaid.read_text().startswith("flowchart LR")
    assert dot.read_text().startswith("digraph lms {")
    assert "drift: 1 undeclared, 1 unused" in result.stdout
    strict = await asyncio.to_thread(
        CliRunner().invoke, cli, ["map", "--strict"], env={"LMS_STATE_DIR": str(tmp_path)}
    )
    assert strict.exit_code == 0  # the services stopped: nothing declared, nothing judged


def test_the_cli_refuses_a_bad_window_and_says_when_it_knows_nothing(tmp_path: Path) -> None:
    env = {"LMS_STATE_DIR": str(tmp_path)}
    bad = CliRunner().invoke(cli, ["map", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2
    assert "--since" in bad.stderr
    empty = CliRunner().invoke(cli, ["map"], env=env)
    assert empty.exit_code == 0
    assert "no dependencies known" in empty.stderr
    assert not (tmp_path / "discovery").exists()  # asking created nothing
