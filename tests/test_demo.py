"""The example LMS platform: its services in-process, and `make demo` end to end.

The services keep their data in SQLite files under the test's state folder
(the default ``.lms`` of the test's working directory), their tables made by
their migrations at start-up. ``tests/test_examples_db.py`` plays the whole
scenario in-process on SQLite and PostgreSQL, and runs ``make demo`` twice.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from examples.access import auth_settings, new_platform_secrets
from examples.courses.app import FLAT_LESSONS_DEPRECATION
from examples.courses.app import build_service as build_courses
from examples.demo import run_scenario
from examples.driver import StepResult, run_step
from examples.enrollments.app import build_service as build_enrollments
from examples.grading.app import build_service as build_grading
from examples.identity.app import build_service as build_identity
from examples.processes import Platform, PlatformError
from examples.scenario import STEPS, Scenario
from lms_shared import Service, load_settings
from lms_shared.testing import FakeIdentity, service_client

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "application/problem+json"
SERVICES = ("identity", "courses", "enrollments", "grading")
IDENTITY_URL = "http://identity.test"
PASSWORD = "correct horse battery staple"
BREAKER_STEP = "Stop courses: the breaker opens, then closes"


# --- helpers -------------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base() -> int:
    """A random base in 20000-40000 whose four service ports are free."""
    for _ in range(200):
        base = random.randrange(20000, 40000)
        if all(port_free(base + i) for i in range(1, 5)):
            return base
    raise RuntimeError("no free port range found")


def service_processes(base: int) -> list[str]:
    """Command lines of live example services on the ports of ``base``."""
    ports = {str(base + i) for i in range(1, 5)}
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "--port" in args and args.index("--port") + 1 < len(args):
            port = args[args.index("--port") + 1]
            if port in ports and any(a.startswith("examples.") for a in args):
                found.append(" ".join(args))
    return found


def demo_env(base: int, state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    env.pop("FORCE_COLOR", None)
    env.update(
        LMS_DEMO_PORT_BASE=str(base),
        LMS_STATE_DIR=str(state_dir),
        NO_COLOR="1",
        COLUMNS="120",
    )
    return env


def summary_rows(output: str) -> dict[str, str]:
    """``{step: result}`` from the summary table the demo prints."""
    _, _, table = output.partition("Scenario summary")
    rows = {}
    for line in table.splitlines():
        if line.startswith("Services"):
            break
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 4 and cells[0].isdigit():
            rows[cells[1]] = cells[2]
    return rows


def assert_platform_gone(base: int) -> None:
    assert all(port_free(base + i) for i in range(1, 5)), "a service port is still taken"
    assert service_processes(base) == []


@pytest.fixture(autouse=True)
def _migrate_on_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Services built in-process make their tables at start-up, as in the demo."""
    monkeypatch.setenv("LMS_DATABASE_MIGRATE_ON_START", "true")


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Where a demo runner started by a test writes, and its process (stopped after)."""
    started: dict[str, Any] = {"base": free_port_base(), "state": tmp_path / "state"}
    yield started
    process: subprocess.Popen[bytes] | None = started.get("process")
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- `make demo` end to end ----------------------------------------------------------------------
# `--once` (every step OK, every service stopped) runs twice on one state folder in
# tests/test_examples_db.py::test_demo_twice_on_one_state_folder_keeps_the_data_and_plays_on_it


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_the_long_running_demo(runner: dict[str, Any], signum: int) -> None:
    base, state = runner["base"], runner["state"]
    out_path = state.parent / "demo.out"
    with out_path.open("wb") as out:
        process = runner["process"] = subprocess.Popen(
            [sys.executable, "-m", "examples.demo"],
            cwd=ROOT,
            env={**demo_env(base, state), "COLUMNS": "320"},  # step lines on one line each
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180
    ready: set[int] = set()
    with httpx.Client(timeout=2.0) as client:
        while len(ready) < 4 or "Press Ctrl-C" not in out_path.read_text():
            assert process.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, out_path.read_text()
            for port in set(range(base + 1, base + 5)) - ready:
                try:
                    if client.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                        ready.add(port)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
    assert len(service_processes(base)) == 4

    process.send_signal(signum)

    assert process.wait(120) == 0, out_path.read_text()
    output = out_path.read_text()
    assert "stopped identity, courses, enrollments, grading" in output
    assert_platform_gone(base)
    # mid-scenario courses stopped: 503s, then the breaker's fast 503 circuit-open, then closed
    assert summary_rows(output) == {step.title: "OK" for step in STEPS}, output
    line = next(line for line in output.splitlines() if "courses stopped: 503" in line)
    assert re.search(r"503 (service-unavailable|no-instances) x \d+", line), line
    assert re.search(r"then 503 circuit-open in \d+ ms", line), line
    assert re.search(r"the breaker closed \d+\.\d s later \(201 enrolled again\)", line), line


def test_the_breaker_step_says_courses_cannot_be_stopped_in_process() -> None:
    step = next(step for step in STEPS if step.title == BREAKER_STEP)
    with httpx.Client() as client:
        result = run_step(step, Scenario(client, {}))

    assert result.ok, result
    assert result.summary.startswith("skipped: courses cannot be stopped in process")


def test_demo_names_the_service_whose_port_is_taken(runner: dict[str, Any]) -> None:
    base = runner["base"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", base + 2))
        squatter.listen()
        done = subprocess.run(
            [sys.executable, "-m", "examples.demo", "--once"],
            cwd=ROOT,
            env=demo_env(base, runner["state"]),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1
    assert f"port {base + 2} for the courses service is already in use" in output
    assert "LMS_DEMO_PORT_BASE" in output
    assert_platform_gone(base)


def test_platform_names_the_service_that_failed_and_its_log(tmp_path: Path) -> None:
    port = free_port_base() + 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    platform = Platform({"missing": port}, root=ROOT, log_dir=tmp_path, environ=env)
    platform.start()
    try:
        with pytest.raises(PlatformError) as caught:
            platform.wait_ready(120)
    finally:
        codes = platform.stop()
    message = str(caught.value)
    # `lms-shared serve` exits 2 for a target it cannot import (a usage error, as
    # every lms-shared command does); uvicorn, which the demo used before, exited 1
    assert "the missing service exited with code 2 while starting" in message
    assert str(tmp_path / "missing.log") in message
    assert "cannot import 'examples.missing.app'" in message  # the log's last lines say why
    assert codes == {"missing": 2}
    assert port_free(port)


def test_scenario_skips_the_rest_after_a_failed_step() -> None:
    base = free_port_base()  # nothing listens there
    urls = {name: f"http://127.0.0.1:{base + i}" for i, name in enumerate(SERVICES, 1)}
    out = io.StringIO()

    results = run_scenario(Console(file=out, width=120), urls)

    assert [r.result for r in results] == ["FAILED"] + ["SKIPPED"] * (len(STEPS) - 1)
    assert results[0].summary.startswith("ConnectError")
    assert "✗   1. Check every service is ready" in out.getvalue()


# --- the services in-process ---------------------------------------------------------------------


@asynccontextmanager
async def as_instructor(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A started service trusting a fake identity, and a client sending an instructor's token."""
    identity = FakeIdentity()
    identity.install(service)
    headers = identity.headers("barbara", roles=["instructor"])
    async with service_client(service, headers=headers) as client:
        yield client


async def create_course(client: httpx.AsyncClient, code: str = "CS101") -> dict[str, Any]:
    response = await client.post(
        "/v1/courses",
        json={
            "code": code,
            "title": "Distributed systems",
            "organization_id": "0b5b1c4e-3a8e-4d57-9a4c-6f7e1f0f2a10",
            "instructor_id": "5f0e8a52-2d47-4c1b-8a55-0d7c0c1d9e31",
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_courses_create_and_get() -> None:
    async with as_instructor(build_courses()) as client:
        course = await create_course(client)
        response = await client.get(f"/v1/courses/{course['id']}")

    assert course["status"] == "draft"
    assert course["modules"] == []
    assert response.status_code == 200
    assert response.json() == course


async def test_courses_unknown_course_is_a_404_problem() -> None:
    missing = "7d3e9a4c-1111-4222-8333-444455556666"
    async with as_instructor(build_courses()) as client:
        response = await client.get(f"/v1/courses/{missing}")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["code"] == "not-found"
    assert problem["detail"] == f"course {missing} does not exist"
    assert problem["instance"] == f"/v1/courses/{missing}"


async def test_courses_pages_follow_the_next_links() -> None:
    async with as_instructor(build_courses()) as client:
        created = {(await create_course(client, f"CS10{i}"))["id"] for i in range(5)}
        seen: list[str] = []
        sizes = []
        url: str | None = "/v1/courses?limit=2"
        while url is not None:
            page = (await client.get(url)).json()
            sizes.append(len(page["items"]))
            seen.extend(item["id"] for item in page["items"])
            url = page["links"]["next"]
        forged = await client.get("/v1/courses", params={"cursor": "bm90IGEgY3Vyc29y"})

    assert sizes == [2, 2, 1]
    assert sorted(seen) == sorted(created)
    assert forged.status_code == 400
    assert forged.json()["code"] == "invalid-cursor"


async def test_courses_invalid_body_is_a_validation_problem() -> None:
    async with as_instructor(build_courses()) as client:
        response = await client.post("/v1/courses", json={"code": "cs-101", "title": ""})

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation-error"
    pointers = {error["pointer"] for error in problem["errors"]}
    assert pointers == {"#/code", "#/title", "#/organization_id", "#/instructor_id"}


async def test_courses_publish_needs_a_lesson_and_happens_once() -> None:
    async with as_instructor(build_courses()) as client:
        course = await create_course(client)
        empty = await client.post(f"/v1/courses/{course['id']}/publish")
        module = (
            await client.post(f"/v1/courses/{course['id']}/modules", json={"title": "Basics"})
        ).json()
        lesson = await client.post(
            f"/v1/courses/{course['id']}/modules/{module['id']}/lessons",
            json={"title": "Why services fail", "duration_minutes": 25},
        )
        published = await client.post(f"/v1/courses/{course['id']}/publish")
        again = await client.post(f"/v1/courses/{course['id']}/publish")

    assert (empty.status_code, empty.json()["code"]) == (409, "course-not-ready")
    assert lesson.status_code == 201
    assert published.status_code == 200
    assert published.json()["status"] == "published"
    assert published.json()["modules"][0]["lessons"][0]["title"] == "Why services fail"
    assert (again.status_code, again.json()["code"]) == (409, "conflict")


async def test_courses_flat_lessons_route_is_deprecated() -> None:
    async with as_instructor(build_courses()) as client:
        course = await create_course(client)
        response = await client.get(f"/v1/courses/{course['id']}/lessons")
        current = await client.get(f"/v1/courses/{course['id']}")

    assert response.status_code == 200
    assert response.headers["deprecation"] == f"@{int(FLAT_LESSONS_DEPRECATION.at.timestamp())}"
    assert response.headers["sunset"] == "Thu, 31 Dec 2026 00:00:00 GMT"
    assert 'rel="deprecation"' in response.headers["link"]
    assert "deprecation" not in current.headers


async def test_courses_patch_needs_the_current_etag() -> None:
    async with as_instructor(build_courses()) as client:
        course = await create_course(client)
        path = f"/v1/courses/{course['id']}"
        merge = {"content-type": "application/merge-patch+json"}
        etag = (await client.get(path)).headers["etag"]
        missing = await client.patch(path, json={"title": "New"}, headers=merge)
        edited = await client.patch(
            path,
            json={"title": "New", "description": "<i>x</i><script>y()</script>"},
            headers={**merge, "if-match": etag},
        )
        stale = await client.patch(
            path, json={"title": "Stale"}, headers={**merge, "if-match": etag}
        )
        unknown = await client.patch(
            path,
            json={"status": "published"},
            headers={**merge, "if-match": edited.headers["etag"]},
        )
        read = await client.get(path)

    assert etag == '"1"'
    assert (missing.status_code, missing.json()["code"]) == (428, "precondition-required")
    assert edited.status_code == 200
    assert edited.headers["etag"] == '"2"'
    assert (edited.json()["title"], edited.json()["description"]) == ("New", "<i>x</i>")
    assert (stale.status_code, stale.json()["code"]) == (412, "precondition-failed")
    assert stale.headers["etag"] == '"2"'
    assert (unknown.status_code, unknown.json()["code"]) == (422, "validation-error")
    assert read.json()["title"] == "New"
    assert read.json()["status"] == "draft"
    assert read.headers["etag"] == '"2"'


@asynccontextmanager
async def platform_in_process(
    settings: Callable[[str], dict[str, Any]] = lambda name: {},
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The four services in one process, calling each other through ASGI transports.

    Authentication is real: identity signs with a fresh key and serves its
    JWKS and token endpoint to the others through its ASGI app, with the
    settings the demo runner sets (:func:`examples.access.auth_settings`).

    Args:
        settings: each service's settings by name, as ``load_settings`` keywords
            (the rest from ``LMS_*``).
    """
    platform = new_platform_secrets()

    def settings_of(name: str) -> Any:
        return load_settings(**auth_settings(name, IDENTITY_URL, platform), **settings(name))

    identity = build_identity(settings=settings_of("identity"))
    to_identity = httpx.ASGITransport(app=identity.app)
    courses = build_courses(settings=settings_of("courses"), transports={"identity": to_identity})
    enrollments = build_enrollments(
        settings=settings_of("enrollments"),
        transports={"identity": to_identity, "courses": httpx.ASGITransport(app=courses.app)},
    )
    grading = build_grading(
        settings=settings_of("grading"),
        transports={
            "identity": to_identity,
            "enrollments": httpx.ASGITransport(app=enrollments.app),
        },
    )
    async with (
        service_client(identity) as identity_client,
        service_client(courses) as courses_client,
        service_client(enrollments) as enrollments_client,
        service_client(grading) as grading_client,
    ):
        yield {
            "identity": identity_client,
            "courses": courses_client,
            "enrollments": enrollments_client,
            "grading": grading_client,
        }


async def log_in(identity: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Any:
    """The bearer headers of a password login at identity."""
    response = await identity.post("/v1/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['access_token']}"}


async def bootstrap(identity: httpx.AsyncClient) -> tuple[dict[str, Any], Any]:
    """Bootstrap the platform's admin; its organization and bearer headers."""
    made = await identity.post(
        "/v1/bootstrap",
        json={
            "organization": {"name": "Northwind", "slug": "northwind"},
            "email": "root@nw.edu",
            "name": "Root",
            "password": PASSWORD,
        },
    )
    assert made.status_code == 201, made.text
    return made.json()["organization"], await log_in(identity, "root@nw.edu")


async def test_enrollment_checks_identity_and_courses_and_grading_checks_enrollment() -> None:
    async with platform_in_process() as c:
        org, admin = await bootstrap(c["identity"])

        async def user(email: str, role: str) -> tuple[str, Any]:
            body = {
                "email": email,
                "name": email,
                "role": role,
                "organization_id": org["id"],
                "password": PASSWORD,
            }
            response = await c["identity"].post("/v1/users", json=body, headers=admin)
            assert response.status_code == 201, response.text
            return str(response.json()["id"]), await log_in(c["identity"], email)

        (student, ada), (teacher, barbara) = (
            await user("ada@nw.edu", "student"),
            await user("bl@nw.edu", "instructor"),
        )
        course = (
            await c["courses"].post(
                "/v1/courses",
                json={
                    "code": "CS101",
                    "title": "Distributed systems",
                    "organization_id": org["id"],
                    "instructor_id": teacher,
                },
                headers=barbara,
            )
        ).json()
        enroll = {"course_id": course["id"], "user_id": student}
        draft = await c["enrollments"].post("/v1/enrollments", json=enroll, headers=ada)
        module = (
            await c["courses"].post(
                f"/v1/courses/{course['id']}/modules", json={"title": "M"}, headers=barbara
            )
        ).json()
        await c["courses"].post(
            f"/v1/courses/{course['id']}/modules/{module['id']}/lessons",
            json={"title": "L", "duration_minutes": 5},
            headers=barbara,
        )
        await c["courses"].post(f"/v1/courses/{course['id']}/publish", headers=barbara)
        enrolled = await c["enrollments"].post("/v1/enrollments", json=enroll, headers=ada)
        twice = await c["enrollments"].post("/v1/enrollments", json=enroll, headers=ada)
        instructor = await c["enrollments"].post(
            "/v1/enrollments", json={"course_id": course["id"], "user_id": teacher}, headers=admin
        )
        enrollment = enrolled.json()
        submitted = await c["grading"].post(
            "/v1/submissions",
            json={"enrollment_id": enrollment["id"], "assignment": "Lab 1"},
            headers=ada,
        )
        grade = {"score": 45, "max_score": 50, "grader_id": teacher}
        self_graded = await c["grading"].post(
            f"/v1/submissions/{submitted.json()['id']}/grade", json=grade, headers=ada
        )
        graded = await c["grading"].post(
            f"/v1/submissions/{submitted.json()['id']}/grade", json=grade, headers=barbara
        )
        await c["enrollments"].post(f"/v1/enrollments/{enrollment['id']}/withdraw", headers=admin)
        withdrawn = await c["grading"].post(
            "/v1/submissions",
            json={"enrollment_id": enrollment["id"], "assignment": "Lab 2"},
            headers=ada,
        )
        ready = await c["enrollments"].get("/health/ready")

    assert (draft.status_code, draft.json()["code"]) == (409, "course-not-published")
    assert enrolled.status_code == 201
    assert enrolled.headers["location"] == f"/v1/enrollments/{enrollment['id']}"
    assert (twice.status_code, twice.json()["code"]) == (409, "already-enrolled")
    assert twice.json()["enrollment_id"] == enrollment["id"]
    assert (instructor.status_code, instructor.json()["code"]) == (409, "not-a-student")
    assert submitted.status_code == 201
    assert submitted.json()["student_id"] == student
    assert (self_graded.status_code, self_graded.json()["code"]) == (
        403,
        "insufficient-permission",
    )
    assert 'error="insufficient_scope"' in self_graded.headers["www-authenticate"]
    assert graded.status_code == 201
    assert graded.json()["percent"] == 90.0
    assert (withdrawn.status_code, withdrawn.json()["code"]) == (409, "enrollment-inactive")
    checks = ready.json()["checks"]
    assert {name: check["status"] for name, check in checks.items()} == {
        "auth": "pass",
        "identity": "pass",
        "courses": "pass",
        "database": "pass",
        "events": "pass",  # enrollments consumes course events
    }


async def test_unreachable_dependency_is_a_503_problem_and_only_a_readiness_warning() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    down = httpx.MockTransport(refuse)
    enrollments = build_enrollments(transports={"identity": down, "courses": down})
    identity = FakeIdentity()
    identity.install(enrollments)
    student = "0b5b1c4e-3a8e-4d57-9a4c-6f7e1f0f2a10"
    async with service_client(enrollments, headers=identity.headers(student)) as client:
        response = await client.post(
            "/v1/enrollments",
            json={"course_id": "7d3e9a4c-1111-4222-8333-444455556666", "user_id": student},
        )
        ready = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["code"] == "service-unavailable"
    assert response.json()["detail"] == "the identity service is unreachable"
    assert response.headers["retry-after"] == "1"
    assert ready.status_code == 200
    report = ready.json()
    assert report["status"] == "warn"
    assert report["checks"]["identity"]["status"] == "warn"
    assert report["checks"]["identity"]["critical"] is False


async def test_a_poisoned_event_is_dead_lettered_and_replayed_after_the_fix(
    tmp_path: Path,
) -> None:
    """The scenario's dead-letter step, after the steps it needs, on the services in-process."""
    from tests.test_examples_db import InProcess  # here: that module imports this one

    wanted = (
        "Check every service is ready",
        "Bootstrap and log in the admin",
        "Create an organization",
        "Register users",
        "Log in the instructor and students",
        "Dead-letter a poisoned event and replay it",
    )
    steps = [step for step in STEPS if step.title in wanted]
    state = {"state_dir": tmp_path / "state"}
    async with platform_in_process(lambda name: state) as clients:
        transport = InProcess(clients, asyncio.get_running_loop())
        urls = {name: f"http://{name}.test" for name in SERVICES}

        def play() -> tuple[list[StepResult], httpx.Response, str]:
            out = Console(file=io.StringIO(), width=160)
            with httpx.Client(transport=transport, timeout=10.0) as client:
                scenario = Scenario(client, urls)
                results = [run_step(step, scenario) for step in steps]
                for detail in scenario.details:
                    out.print(detail)
                drill = client.put(
                    urls["enrollments"] + "/admin/drills/course-intake",
                    json={"failing": True},
                    headers=scenario.credentials[scenario.student_ids[0]],
                )
            assert isinstance(out.file, io.StringIO)
            return results, drill, out.file.getvalue()

        results, drill, details = await asyncio.to_thread(play)

    assert [r.title for r in results] == list(wanted)
    assert [r.result for r in results] == ["OK"] * len(wanted), results
    summary = results[-1].summary
    assert "CS102's CoursePublished dead-lettered at enrollments (handler-failed, 4 attempts" in (
        summary
    )
    assert "replayed 1: enrollments heard of CS102, the letter is gone" in summary
    trace = re.search(r"trace ([0-9a-f]{32})", summary)
    assert trace is not None, summary
    assert re.search(r"dead letter [0-9a-f]{32}", details), details
    for shown in (
        "lms.course.published",
        "handler-failed",
        "course_published",
        trace.group(1),
        "CourseIntakeDown: course intake is down (drill): catalogue re-indexing",
        "1 letter, then 200 /v1/published-courses/",
    ):
        assert shown in details, details
    assert (drill.status_code, drill.json()["code"]) == (403, "insufficient-permission")


def test_the_course_intake_drill_is_not_served_in_production() -> None:
    production = build_enrollments(
        settings=load_settings(
            env="production",
            secret_key="kQ9-vT3x-Lp7w-Zr2m-Ny6c-Hb4s-Jd8f",
            ratelimit_url="redis://ratelimit.internal:6379/0",
            allowed_hosts=["enrollments.example"],
            auth_issuer="https://identity.example",
            auth_jwks_url="https://identity.example/.well-known/jwks.json",
            database_url="postgresql+asyncpg://lms@db.example/enrollments",  # never connected
        )
    )
    paths = set(production.app.openapi()["paths"])

    assert "/admin/drills/course-intake" not in paths
    assert "/admin/events/dead-letters" in paths
    assert "/v1/published-courses/{course_id}" in paths
