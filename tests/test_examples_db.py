"""The example platform keeps its data through lms_shared.db, on SQLite and PostgreSQL.

* The demo's whole scenario plays in-process (the four services wired
  through ASGI transports, as in ``tests/test_demo.py``), twice on the same
  databases with a restart in between: migrate-on-start makes the tables
  the first time and finds nothing to do the second, and the scenario plays
  on the data the first run left.
* Each service's migrations build exactly its models' tables (no drift) and
  downgrade cleanly.
* Unique rules are constraints: racing requests get one 201 and 409s.
* ``make demo`` twice in a row on one state folder (SQLite files, kept).

On PostgreSQL (``LMS_TEST_POSTGRES_URL``) every service gets its own schema
(``LMS_DATABASE_SCHEMA``), made for the test and dropped after it, so
parallel runs do not collide. Without a server those tests skip, and under
``CI=true`` they fail.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from rich.console import Console
from sqlalchemy import MetaData, func, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from tests.test_demo import (
    IDENTITY_URL,
    PASSWORD,
    ROOT,
    SERVICES,
    assert_platform_gone,
    demo_env,
    free_port_base,
    platform_in_process,
    summary_rows,
)

from examples.access import auth_settings, new_platform_secrets
from examples.courses.app import build_service as build_courses
from examples.courses.tables import Base as CoursesBase
from examples.demo import run_scenario
from examples.driver import StepResult
from examples.enrollments.app import build_service as build_enrollments
from examples.enrollments.tables import Base as EnrollmentsBase
from examples.enrollments.tables import EnrollmentRow
from examples.grading.app import build_service as build_grading
from examples.grading.tables import Base as GradingBase
from examples.identity.app import build_service as build_identity
from examples.identity.tables import Base as IdentityBase
from examples.identity.tables import UserRow
from examples.scenario import STEPS
from lms_shared import Service, Settings, load_settings
from lms_shared.db import Migrations, parse_database_url
from lms_shared.testing import FakeIdentity, service_client

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
BUILD: dict[str, Callable[..., Service]] = {
    "identity": build_identity,
    "courses": build_courses,
    "enrollments": build_enrollments,
    "grading": build_grading,
}
METADATA: dict[str, MetaData] = {
    "identity": IdentityBase.metadata,
    "courses": CoursesBase.metadata,
    "enrollments": EnrollmentsBase.metadata,
    "grading": GradingBase.metadata,
}
EVENT_TABLES = {"lms_event_outbox", "lms_event_inbox", "lms_dead_letters"}
SOURCING_TABLES = {"lms_event_store", "lms_event_snapshots", "lms_projection_checkpoints"}
TABLES = {
    "identity": {"organizations", "users", "lms_api_keys"},
    "courses": {"courses", "modules", "lessons", *EVENT_TABLES},
    "enrollments": {"enrollments", "lms_idempotency_keys", "published_courses", *EVENT_TABLES},
    "grading": {"submissions", "grades", *SOURCING_TABLES},
}
SettingsFor = Callable[[str], dict[str, Any]]
"""Each service's ``load_settings`` keywords, by name."""


def settings_of(settings_for: SettingsFor, name: str) -> Settings:
    return load_settings(**settings_for(name))


@pytest.fixture(params=BACKENDS)
async def settings_for(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SettingsFor]:
    """Each service's settings: its own SQLite file, or its own PostgreSQL schema.

    Migrate-on-start is on, as in the demo. The PostgreSQL schemas are made
    here and dropped afterwards, with everything in them.
    """
    if request.param == "sqlite":
        state = tmp_path / "state"
        yield lambda name: {"state_dir": state, "database_migrate_on_start": True}
        return
    url = str(request.getfixturevalue("postgres_url"))
    prefix = f"lms_ex_{secrets.token_hex(4)}"
    schemas = {name: f"{prefix}_{name}" for name in SERVICES}
    admin = create_async_engine(parse_database_url(url))
    try:
        async with admin.begin() as conn:
            for schema in schemas.values():
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield lambda name: {
            "database_url": url,
            "database_schema": schemas[name],
            "database_migrate_on_start": True,
        }
    finally:
        async with admin.begin() as conn:
            for schema in schemas.values():
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


class InProcess(httpx.BaseTransport):
    """The scenario's synchronous requests, sent to in-process services on the event loop.

    The scenario runs in a worker thread; each request is handed to the
    loop, where the service's client sends it through the ASGI app.
    """

    def __init__(
        self, clients: Mapping[str, httpx.AsyncClient], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.clients = clients
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        client = self.clients[request.url.host.removesuffix(".test")]
        sent = asyncio.run_coroutine_threadsafe(client.send(request), self.loop)
        response = sent.result(timeout=60)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=response.content,
            request=request,
        )


async def play(clients: Mapping[str, httpx.AsyncClient]) -> tuple[list[StepResult], str]:
    """Play the demo's scenario against the in-process services; results and output."""
    out = io.StringIO()
    transport = InProcess(clients, asyncio.get_running_loop())
    urls = {name: f"http://{name}.test" for name in SERVICES}
    results = await asyncio.to_thread(
        run_scenario, Console(file=out, width=160), urls, transport=transport
    )
    return results, out.getvalue()


async def service_tables(service: Service) -> set[str]:
    """The tables in the service's database (its schema on PostgreSQL)."""
    async with service.db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


# --- the bootstrap, raced ----------------------------------------------------------------------


async def test_concurrent_bootstraps_make_exactly_one_admin(settings_for: SettingsFor) -> None:
    identity = build_identity(
        settings=load_settings(
            **auth_settings("identity", IDENTITY_URL, new_platform_secrets()),
            **settings_for("identity"),
        )
    )

    def body(n: int) -> dict[str, Any]:
        return {
            "organization": {"name": f"Org {n}", "slug": f"org-{n}"},
            "email": f"admin{n}@org{n}.edu",
            "name": f"Admin {n}",
            "password": PASSWORD,
        }

    async with service_client(identity) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/bootstrap", json=body(n)) for n in range(6))
        )
        async with identity.db.transaction(read_only=True) as tx:
            admins = (await tx.scalars(select(UserRow.email))).all()
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"already-bootstrapped"}
    assert len(admins) == 1


# --- the scenario, twice ------------------------------------------------------------------------


async def test_scenario_plays_twice_on_the_same_databases(settings_for: SettingsFor) -> None:
    organizations = []
    for _ in range(2):  # a new platform each time: started, migrated, stopped
        async with platform_in_process(settings_for) as clients:
            results, output = await play(clients)
        assert [r.result for r in results] == ["OK"] * len(STEPS), output
        organizations.append(
            next(r.summary for r in results if r.title == "Create an organization")
        )

    assert "(northwind; the first run)" in organizations[0]
    assert "(northwind-2; 1 kept from earlier runs)" in organizations[1]
    for name in SERVICES:  # each service has its own database (or schema), and only its tables
        service = BUILD[name](settings=settings_of(settings_for, name))
        try:
            assert await service_tables(service) == TABLES[name] | {f"alembic_version_{name}"}
        finally:
            await service.db.stop()
    enrollments = build_enrollments(settings=settings_of(settings_for, "enrollments"))
    try:
        async with enrollments.db.transaction(read_only=True) as tx:
            dropped = await tx.scalar(
                select(func.count(EnrollmentRow.id))
                .where(EnrollmentRow.deleted_at.is_not(None))
                .execution_options(include_deleted=True)
            )
            # count(EnrollmentRow.id), not count().select_from(EnrollmentRow): without a
            # tenant the database layer only sees entities among the selected columns
            visible = await tx.scalar(select(func.count(EnrollmentRow.id)))
    finally:
        await enrollments.db.stop()
    assert dropped == 2  # one dropped per run: kept in the table, soft-deleted
    assert visible == 2 * 6  # each run's six students (one re-enrolled), dropped ones left out


# --- migrations ---------------------------------------------------------------------------------


def drift(metadata: MetaData) -> Callable[[Connection], list[Any]]:
    """What autogenerate would still change to make the database match ``metadata``."""

    def compare(conn: Connection) -> list[Any]:
        own = set(metadata.tables)
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _: kind != "table" or name in own,
            },
        )
        return list(compare_metadata(context, metadata))

    return compare


@pytest.mark.parametrize("name", SERVICES)
async def test_migrations_build_the_models_tables_and_downgrade(
    settings_for: SettingsFor, name: str
) -> None:
    service = BUILD[name](settings=settings_of(settings_for, name))
    migrations = service.db.migrations
    assert migrations is not None
    try:
        applied = await migrations.upgrade(service.db.engine)
        async with service.db.engine.connect() as conn:
            differences = await conn.run_sync(drift(METADATA[name]))
        tables = await service_tables(service)
        await migrations.downgrade(service.db.engine, "base")
        left = await service_tables(service)
    finally:
        await service.db.stop()

    assert applied[-1:] == migrations.heads()  # every revision, in order, up to the head
    assert differences == []
    assert tables == TABLES[name] | {f"alembic_version_{name}"}
    assert left == {f"alembic_version_{name}"}


# --- constraints, soft delete, lists ------------------------------------------------------------

ORG = str(uuid4())


def upstreams(request: httpx.Request) -> httpx.Response:
    """Identity and courses as enrollments sees them: a student, a published course."""
    path = request.url.path
    if path.startswith("/v1/users/"):
        user = path.rsplit("/", 1)[1]
        return httpx.Response(200, json={"id": user, "role": "student", "organization_id": ORG})
    if path.startswith("/v1/courses/"):
        course = path.rsplit("/", 1)[1]
        body = {"id": course, "code": "CS101", "status": "published", "organization_id": ORG}
        return httpx.Response(200, json=body)
    return httpx.Response(200, json={"status": "pass"})


def enrollments_service(settings_for: SettingsFor) -> Service:
    """Enrollments on fake upstreams, trusting a fake identity's tokens (see :func:`admin`)."""
    fake = httpx.MockTransport(upstreams)
    service = build_enrollments(
        settings=settings_of(settings_for, "enrollments"),
        transports={"identity": fake, "courses": fake},
    )
    IDENTITY.install(service)
    return service


IDENTITY = FakeIdentity()
ADMIN = IDENTITY.headers("root", roles=["admin"], audience="enrollments")


async def test_racing_enrollments_get_one_201_and_409s_naming_the_winner(
    settings_for: SettingsFor,
) -> None:
    body = {"course_id": str(uuid4()), "user_id": str(uuid4())}
    async with service_client(enrollments_service(settings_for), headers=ADMIN) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/enrollments", json=body) for _ in range(5))
        )
        winner = next(r.json() for r in responses if r.status_code == 201)
        dropped = await client.delete(f"/v1/enrollments/{winner['id']}")
        gone = await client.get(f"/v1/enrollments/{winner['id']}")
        again = await client.post("/v1/enrollments", json=body)
        twice = await client.delete(f"/v1/enrollments/{winner['id']}")

    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    for refused in (r.json() for r in responses if r.status_code == 409):
        assert refused["code"] == "already-enrolled"
        assert refused["enrollment_id"] == winner["id"]
    assert dropped.status_code == 204
    assert (gone.status_code, gone.json()["code"]) == (404, "not-found")
    assert again.status_code == 201  # a dropped enrollment no longer counts
    assert again.json()["id"] != winner["id"]
    assert twice.status_code == 404


async def test_lists_filter_sort_and_page_by_allowlist(settings_for: SettingsFor) -> None:
    course = str(uuid4())
    async with service_client(enrollments_service(settings_for), headers=ADMIN) as client:
        made = [
            (
                await client.post("/v1/enrollments", json={"course_id": course, "user_id": user})
            ).json()
            for user in (str(uuid4()) for _ in range(5))
        ]
        other = await client.post(
            "/v1/enrollments", json={"course_id": str(uuid4()), "user_id": str(uuid4())}
        )
        await client.post(f"/v1/enrollments/{made[0]['id']}/withdraw")

        async def ids(**params: Any) -> list[str]:
            found: list[str] = []
            url: str | None = "/v1/enrollments"
            query: dict[str, Any] | None = {**params, "limit": 2}
            while url is not None:
                page = await client.get(url, params=query)
                assert page.status_code == 200, page.text
                found.extend(item["id"] for item in page.json()["items"])
                url, query = page.json()["links"]["next"], None
            return found

        by_course = await ids(course_id=course)
        newest_first = await ids(course_id=course, sort="-enrolled_at")
        active = await ids(course_id=course, status="active")
        either = await ids(**{"user_id[in]": f"{made[1]['user_id']},{made[2]['user_id']}"})
        unknown = await client.get("/v1/enrollments", params={"colour": "red"})
        operator = await client.get("/v1/enrollments", params={"status[contains]": "act"})
        sort = await client.get("/v1/enrollments", params={"sort": "user_id"})
        first = (await client.get("/v1/enrollments", params={"limit": 1})).json()
        mixed = await client.get(
            "/v1/enrollments", params={"cursor": first["next_cursor"], "sort": "-enrolled_at"}
        )

    assert other.status_code == 201
    assert sorted(by_course) == sorted(e["id"] for e in made)
    assert sorted(newest_first) == sorted(by_course)
    assert len(active) == 4
    assert made[0]["id"] not in active
    assert sorted(either) == sorted([made[1]["id"], made[2]["id"]])
    assert (unknown.status_code, unknown.json()["code"]) == (400, "invalid-filter")
    assert unknown.json()["parameter"] == "colour"
    assert (operator.status_code, operator.json()["code"]) == (400, "invalid-filter")
    assert operator.json()["parameter"] == "status[contains]"
    assert (sort.status_code, sort.json()["code"]) == (400, "invalid-sort")
    assert (mixed.status_code, mixed.json()["code"]) == (400, "invalid-cursor")


async def test_a_retried_enrollment_with_its_idempotency_key_replays_the_first_answer(
    settings_for: SettingsFor,
) -> None:
    body = {"course_id": str(uuid4()), "user_id": str(uuid4())}
    key = {"idempotency-key": "retry-me-1"}
    async with service_client(enrollments_service(settings_for), headers=ADMIN) as client:
        first = await client.post("/v1/enrollments", json=body, headers=key)
        retried = await client.post("/v1/enrollments", json=body, headers=key)
        other_body = await client.post(
            "/v1/enrollments", json={**body, "user_id": str(uuid4())}, headers=key
        )
        no_key = await client.post("/v1/enrollments", json=body)
        listed = await client.get("/v1/enrollments", params={"course_id": body["course_id"]})

    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert retried.status_code == 201
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json() == first.json()
    assert retried.headers["location"] == f"/v1/enrollments/{first.json()['id']}"
    assert (other_body.status_code, other_body.json()["code"]) == (
        422,
        "idempotency-key-reused",
    )
    assert (no_key.status_code, no_key.json()["code"]) == (409, "already-enrolled")
    assert [e["id"] for e in listed.json()["items"]] == [first.json()["id"]]


async def test_withdrawing_follows_the_shared_enrollment_lifecycle(
    settings_for: SettingsFor,
) -> None:
    body = {"course_id": str(uuid4()), "user_id": str(uuid4())}
    async with service_client(enrollments_service(settings_for), headers=ADMIN) as client:
        made = (await client.post("/v1/enrollments", json=body)).json()
        withdrawn = await client.post(f"/v1/enrollments/{made['id']}/withdraw")
        again = await client.post(f"/v1/enrollments/{made['id']}/withdraw")

    assert withdrawn.status_code == 200
    assert withdrawn.json()["status"] == "withdrawn"
    assert withdrawn.json()["withdrawn_at"] is not None
    problem = again.json()
    assert (again.status_code, problem["code"]) == (409, "illegal-transition")
    assert (problem["current"], problem["requested"], problem["allowed"]) == (
        "dropped",
        "dropped",
        [],
    )


# --- `make demo` twice ----------------------------------------------------------------------------


def migrated(log: str) -> list[list[str]]:
    """The revisions each ``migrated`` line of a service's log says it applied."""
    lines = (json.loads(line) for line in log.splitlines() if line.startswith("{"))
    return [line["revisions"] for line in lines if line.get("event") == "migrated"]


@pytest.mark.slow
def test_demo_twice_on_one_state_folder_keeps_the_data_and_plays_on_it(tmp_path: Path) -> None:
    base, state = free_port_base(), tmp_path / "state"
    env = demo_env(base, state)  # no LMS_DATABASE_URL: SQLite files in the state folder
    outputs: list[str] = []
    for run in (1, 2):
        done = subprocess.run(
            [sys.executable, "-m", "examples.demo", "--once"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert summary_rows(output) == {step.title: "OK" for step in STEPS}, output
        for name, port in zip(SERVICES, range(base + 1, base + 5), strict=True):
            assert f"http://127.0.0.1:{port}/docs" in output
            log = (state / "demo" / f"{name}.log").read_text()
            assert '"event":"service started"' in log
            heads = Migrations(
                ROOT / "examples" / name / "migrations", version_table=f"alembic_version_{name}"
            ).heads()
            applied = migrated(log)  # the first run applies every revision up to the head
            assert len(applied) == 1, log
            assert applied[0][-1:] == heads if run == 1 else applied[0] == [], log
            assert (state / f"{name}.sqlite3").is_file()
        assert "stopped identity, courses, enrollments, grading" in output
        assert f"one SQLite file per service in {state}" in " ".join(output.split())
        # it ends with the traced enrollment as one tree across four services and an event
        tree = output[output.index("─ Trace ") : output.index("Dependency map")]
        for hop in (
            "enrollments: POST /v1/enrollments",
            "identity: GET /v1/users/{user_id}",
            "courses: GET /v1/courses/{course_id}",
            "enrollments: publish lms.enrollment.created",
            "grading: process lms.enrollment.created",
        ):
            assert hop in tree, tree
        assert re.search(r"grading\s+calls\s+enrollments", output), output
        assert re.search(r"lms\.enrollment\.created\s+consumes\s+grading", output), output
        assert "drift: " in output  # (what a snapshot of live traffic shows may vary)
        assert_platform_gone(base)
        outputs.append(output)

    assert "(northwind; the first run)" in outputs[0]
    assert "(northwind-2; 1 kept from earlier runs)" in outputs[1]
