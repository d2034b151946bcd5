"""The demo's scripted scenario: a term at Northwind University.

Each step is a function that drives the services over HTTP (see
:mod:`examples.driver`), checks what they answered and returns a one-line
summary; it raises :class:`StepFailed` when a service answered something
else. Illegal requests are part of the script: the step passes when the
service refuses them with the right RFC 9457 problem.

Every call carries credentials: the platform's first admin is bootstrapped
once (``POST /v1/bootstrap`` works only while identity has no user), then
the admin, the instructor and each student log in with a password and send
their access token; one call uses an API key. Each service checks the
permission a route needs, so a student trying to grade gets a 403 problem.

One step follows an event that cannot be handled: an admin stages an
outage of enrollments' handler of published courses, the event is
dead-lettered, and after the outage the admin replays it over enrollments'
dead-letter API (``/admin/events/dead-letters``).

The services keep their data between runs (each has its own database), so
the scenario plays on whatever earlier runs left: every run is a new term,
with its own organization (``northwind``, then ``northwind-2``, ...) whose
users, course and enrollments are new too.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx
from rich.json import JSON
from rich.panel import Panel
from rich.table import Table

from examples.driver import PROBLEM_TYPE, Driver, Step, StepFailed

__all__ = ["STEPS", "Scenario", "ServiceControl"]

T = TypeVar("T")

STUDENTS = (
    "Ada Lovelace",
    "Alan Turing",
    "Katherine Johnson",
    "Edsger Dijkstra",
    "Radia Perlman",
    "Donald Knuth",
)
SCORES = (92.0, 78.5, 88.0, 95.0, 81.0, 70.5)
ADMIN = {
    "email": "grace.hopper@lms-platform.org",
    "name": "Grace Hopper",
    "password": "demo: change me before production",
}
"""The platform admin, bootstrapped by the first run (and logged in as by every run)."""
PASSWORD = "correct horse battery staple"
"""Every demo user's password (the demo shows logins, not password policy)."""
DESCRIPTION = "<b>Intro</b><img src=x onerror=alert(1)>"
"""A course description with a script in it: courses keeps the markup, not the script."""
OUTLINE = {
    "Foundations": [("Why services fail", 25), ("Timeouts and retries", 30)],
    "Messaging": [("Events and the outbox", 35), ("Idempotent consumers", 30)],
}


class ServiceControl(Protocol):
    """Stops and starts a service of the platform (the demo's processes)."""

    def stop(self, name: str) -> None:
        """Stop the service ``name``; return once it no longer answers."""

    def start(self, name: str) -> None:
        """Start the service ``name`` again; return once it is ready."""


@dataclass
class Scenario(Driver):
    """The driver, plus the ids the steps made so far.

    Attributes:
        services: stops and starts services (``None``: they cannot be, e.g.
            in-process; the step that stops courses then says so).
    """

    org_id: str = ""
    org_slug: str = ""
    admin_id: str = ""
    instructor_id: str = ""
    student_ids: list[str] = field(default_factory=list)
    course_id: str = ""
    enrollment_ids: list[str] = field(default_factory=list)
    submission_ids: list[str] = field(default_factory=list)
    emails: dict[str, str] = field(default_factory=dict)
    trace_id: str = ""  # the traced enrollment's (the demo prints its tree at the end)
    services: ServiceControl | None = None

    def log_in(self, actor: str, email: str, password: str = PASSWORD) -> None:
        """Log in at identity; ``actor``'s requests carry the access token from then on."""
        body = {"email": email, "password": password}
        answer = self.json("POST", "identity", "/v1/login", expect=200, json=body)
        if answer.get("token_type") != "Bearer" or not answer.get("access_token"):
            raise StepFailed(f"the login answered no bearer token: {sorted(answer)}")
        self.login(actor, answer["access_token"])


def check_readiness(s: Scenario, *, settle: float = 5.0) -> str:
    """Every service is ready, and sees the services it depends on.

    Services start side by side: one may have looked a dependency up just
    before it registered. A dependency check that warns is asked again for
    up to ``settle`` seconds before the step fails.
    """
    edges: list[str] = []
    for name in s.urls:
        deadline = time.monotonic() + settle
        while True:
            report = s.json("GET", name, "/health/ready", expect=200)
            checks = report.get("checks", {})
            failing = [(c, r["status"]) for c, r in checks.items() if r["status"] != "pass"]
            if not failing:
                break
            if time.monotonic() > deadline or any(status != "warn" for _, status in failing):
                check, status = failing[0]
                raise StepFailed(f"{name} reports {check} as {status}")
            time.sleep(0.1)
        if checks:
            edges.append(f"{name} → {', '.join(checks)}")
    return f"{len(s.urls)} ready; {'; '.join(edges)}"


def bootstrap_admin(s: Scenario) -> str:
    """The first run makes the platform admin; later ones are refused. Log in as the admin."""
    body = {"organization": {"name": "LMS platform", "slug": "lms-platform"}, **ADMIN}
    response = s.client.post(s.urls["identity"] + "/v1/bootstrap", json=body)
    if response.status_code == 201:
        made = "201 bootstrapped the admin"
    elif response.status_code == 409 and response.json().get("code") == "already-bootstrapped":
        made = "409 already-bootstrapped (kept from an earlier run)"
    else:
        raise StepFailed(f"bootstrap answered {response.status_code}: {response.text[:300]}")
    s.problem("GET", "identity", "/v1/organizations", status=401, code="unauthorized")
    s.log_in("admin", ADMIN["email"], ADMIN["password"])
    s.json("GET", "identity", "/v1/organizations", expect=200, as_="admin")
    return f"{made}; 401 unauthorized without a token, 200 as the logged-in admin"


def earlier_terms(s: Scenario) -> list[int]:
    """The terms earlier runs left: 1 for ``northwind``, n for ``northwind-n``."""
    terms: list[int] = []
    url = s.urls["identity"] + "/v1/organizations"
    params: Mapping[str, str | int] | None = {"slug[prefix]": "northwind", "limit": 200}
    while url:
        page = s.json("GET", "identity", url, expect=200, params=params, as_="admin")
        for org in page["items"]:
            found = re.fullmatch(r"northwind(?:-([0-9]+))?", org["slug"])
            if found:
                terms.append(int(found.group(1) or 1))
        url, params = page["links"]["next"], None
    return terms


def create_organization(s: Scenario) -> str:
    """Create this term's organization; its slug cannot be taken twice."""
    earlier = earlier_terms(s)
    term = max(earlier, default=0) + 1
    s.org_slug = "northwind" if term == 1 else f"northwind-{term}"
    body = {"name": "Northwind University", "slug": s.org_slug}
    org = s.json("POST", "identity", "/v1/organizations", expect=201, json=body, as_="admin")
    s.org_id = org["id"]
    s.problem(
        "POST", "identity", "/v1/organizations", status=409, code="conflict", json=body, as_="admin"
    )
    kept = f"{len(earlier)} kept from earlier runs" if earlier else "the first run"
    return f"201 {org['name']} ({org['slug']}; {kept}), then 409 conflict for the same slug"


def register_users(s: Scenario) -> str:
    """The platform admin registers the term's admin, instructor and students."""

    def register(name: str, role: str) -> str:
        email = f"{name.lower().replace(' ', '.')}@{s.org_slug}.edu"
        phone = f"+4420794600{len(s.emails):02d}"
        body = {
            "email": email,
            "name": name,
            "role": role,
            "organization_id": s.org_id,
            "password": PASSWORD,
            "phone": phone,
        }
        user = s.json("POST", "identity", "/v1/users", expect=201, json=body, as_="admin")
        if "password" in user or "password_hash" in user:
            raise StepFailed("identity answered with the user's password")
        if user.get("phone") != phone:
            raise StepFailed(f"the phone number came back as {user.get('phone')!r}")
        s.emails[user["id"]] = email
        return str(user["id"])

    s.admin_id = register("Edgar Codd", "admin")
    s.instructor_id = register("Barbara Liskov", "instructor")
    s.student_ids = [register(name, "student") for name in STUDENTS]
    return (
        f"201 x {2 + len(STUDENTS)}: 1 admin, 1 instructor, {len(STUDENTS)} students "
        "(argon2id passwords, phone numbers encrypted)"
    )


def log_in_users(s: Scenario) -> str:
    """The instructor and every student log in with their password (argon2id at identity)."""
    s.problem(
        "POST",
        "identity",
        "/v1/login",
        status=401,
        code="invalid-login",
        json={"email": s.emails[s.instructor_id], "password": "not the password"},
    )
    s.log_in("instructor", s.emails[s.instructor_id])
    for student in s.student_ids:
        s.log_in(student, s.emails[student])
    return f"401 invalid-login for a wrong password, then 200 x {1 + len(s.student_ids)} tokens"


def build_course(s: Scenario) -> str:
    """Create a draft course with two modules of two lessons."""
    course = s.json(
        "POST",
        "courses",
        "/v1/courses",
        expect=201,
        json={
            "code": "CS101",
            "title": "Distributed systems",
            "description": DESCRIPTION,
            "organization_id": s.org_id,
            "instructor_id": s.instructor_id,
        },
        as_="instructor",
    )
    s.course_id = course["id"]
    stored = s.json("GET", "courses", f"/v1/courses/{s.course_id}", expect=200, as_="instructor")
    if "onerror" in stored["description"] or "<b>Intro</b>" not in stored["description"]:
        raise StepFailed(f"the description was stored as {stored['description']!r}")
    table = Table(title="description", title_justify="left")
    table.add_column("posted")
    table.add_column("stored")
    table.add_row(DESCRIPTION, stored["description"])
    s.details.append(table)
    lessons = 0
    for title, outline in OUTLINE.items():
        module = s.json(
            "POST",
            "courses",
            f"/v1/courses/{s.course_id}/modules",
            expect=201,
            json={"title": title},
            as_="instructor",
        )
        for lesson, minutes in outline:
            s.call(
                "POST",
                "courses",
                f"/v1/courses/{s.course_id}/modules/{module['id']}/lessons",
                expect=201,
                json={"title": lesson, "duration_minutes": minutes},
                as_="instructor",
            )
            lessons += 1
    return f"201 CS101 ({course['status']}): {len(OUTLINE)} modules, {lessons} lessons"


def throttle_password_guessing(s: Scenario) -> str:
    """Guessing one account's password: 401s, then a 429 with Retry-After (5/minute/account)."""
    target = s.emails[s.admin_id]  # the term's admin has not logged in yet
    guesses = 0
    while True:
        response = s.client.post(
            s.urls["identity"] + "/v1/login", json={"email": target, "password": f"guess {guesses}"}
        )
        guesses += 1
        if response.status_code != 401:
            break
        if guesses > 10:
            raise StepFailed("ten wrong passwords in a row and no rate limit")
    if guesses != 6:
        raise StepFailed(f"the rate limit came after {guesses - 1} wrong passwords, expected 5")
    problem = s.problem(
        "POST",
        "identity",
        "/v1/login",
        status=429,
        code="rate-limited",
        json={"email": target, "password": PASSWORD},  # even the right one, for now
        show=True,
    )
    retry_after = s.last_response.headers.get("retry-after") if s.last_response else None
    if not retry_after:
        raise StepFailed("the 429 came without Retry-After")
    return (
        f"401 invalid-login x 5, then 429 rate-limited "
        f"({problem.get('violated-policies')}, Retry-After: {retry_after} s)"
    )


def edit_course_with_etag(s: Scenario) -> str:
    """Retitle the course with If-Match; an editor holding the old ETag gets a 412."""
    path = f"/v1/courses/{s.course_id}"
    etag = s.call("GET", "courses", path, expect=200, as_="instructor").headers["etag"]
    patch = {"content-type": "application/merge-patch+json"}
    edited = s.call(
        "PATCH",
        "courses",
        path,
        expect=200,
        json={"title": "Distributed systems, in practice"},
        headers={**patch, "if-match": etag},
        as_="instructor",
    )
    s.problem(
        "PATCH",
        "courses",
        path,
        status=412,
        code="precondition-failed",
        json={"title": "Distributed systems (stale edit)"},
        headers={**patch, "if-match": etag},
        as_="instructor",
        show=True,
    )
    title = s.json("GET", "courses", path, expect=200, as_="instructor")["title"]
    if title != "Distributed systems, in practice":
        raise StepFailed(f"the stale edit changed the title to {title!r}")
    new = edited.headers["etag"]
    return f"200 If-Match {etag} → ETag {new}; 412 precondition-failed for If-Match {etag}"


def refuse_draft_enrollment(s: Scenario) -> str:
    """Enrolling in a course that is still a draft is refused."""
    problem = s.problem(
        "POST",
        "enrollments",
        "/v1/enrollments",
        status=409,
        code="course-not-published",
        json={"course_id": s.course_id, "user_id": s.student_ids[0]},
        as_=s.student_ids[0],
        show=True,
    )
    return f"409 {problem['code']}"


def publish_course(s: Scenario) -> str:
    """Publish the course."""
    course = s.json(
        "POST", "courses", f"/v1/courses/{s.course_id}/publish", expect=200, as_="instructor"
    )
    if course["status"] != "published":
        raise StepFailed(f"the course is {course['status']} after publishing")
    return f"200 CS101 {course['status']}"


def enroll_students(s: Scenario) -> str:
    """Every student enrolls (enrollments asks identity and courses with its service tokens).

    The first one's network is flaky: their POST carries an ``Idempotency-Key``
    and is sent twice; the retry gets the first answer back, not a new enrollment
    (nor a 409 already-enrolled).
    """
    first = {"course_id": s.course_id, "user_id": s.student_ids[0]}
    key = {"idempotency-key": f"enroll-{s.org_slug}-{s.student_ids[0]}"}
    # one W3C trace from here through enrollments, identity, courses and the event to grading
    s.trace_id = secrets.token_hex(16)
    traced = {**key, "traceparent": f"00-{s.trace_id}-{secrets.token_hex(8)}-01"}
    sent = s.call(
        "POST",
        "enrollments",
        "/v1/enrollments",
        expect=201,
        json=first,
        headers=traced,
        as_=s.student_ids[0],
    )
    retried = s.call(
        "POST",
        "enrollments",
        "/v1/enrollments",
        expect=201,
        json=first,
        headers=key,
        as_=s.student_ids[0],
    )
    if retried.json() != sent.json() or retried.headers.get("idempotent-replayed") != "true":
        raise StepFailed(f"the retry was not a replay: {retried.text[:200]}")
    s.enrollment_ids = [sent.json()["id"]] + [
        s.json(
            "POST",
            "enrollments",
            "/v1/enrollments",
            expect=201,
            json={"course_id": s.course_id, "user_id": student},
            as_=student,
        )["id"]
        for student in s.student_ids[1:]
    ]
    s.problem(
        "POST",
        "enrollments",
        "/v1/enrollments",
        status=403,
        code="insufficient-permission",
        json={"course_id": s.course_id, "user_id": s.student_ids[1]},
        as_=s.student_ids[0],
    )
    return (
        f"201 x {len(s.enrollment_ids)} students in CS101 (one retried with its "
        "Idempotency-Key: 201 replayed, same enrollment), "
        "403 insufficient-permission enrolling someone else"
    )


def drop_mistaken_enrollment(s: Scenario) -> str:
    """A dropped enrollment is gone from reads (kept soft-deleted); the student re-enrolls."""
    first = s.enrollment_ids[0]
    s.call("DELETE", "enrollments", f"/v1/enrollments/{first}", expect=204, as_="admin")
    s.problem(
        "GET", "enrollments", f"/v1/enrollments/{first}", status=404, code="not-found", as_="admin"
    )
    again = s.json(
        "POST",
        "enrollments",
        "/v1/enrollments",
        expect=201,
        json={"course_id": s.course_id, "user_id": s.student_ids[0]},
        as_=s.student_ids[0],
    )
    s.enrollment_ids[0] = again["id"]
    return "204 dropped, then 404 not-found, then 201 enrolled again"


def refuse_illegal_enrollments(s: Scenario) -> str:
    """A second enrollment, an instructor and an unknown user are refused."""
    attempts = [
        (409, "already-enrolled", s.student_ids[0]),
        (409, "not-a-student", s.instructor_id),
        (404, "not-found", "00000000-0000-4000-8000-000000000000"),
    ]
    for status, code, user in attempts:
        s.problem(
            "POST",
            "enrollments",
            "/v1/enrollments",
            status=status,
            code=code,
            json={"course_id": s.course_id, "user_id": user},
            as_="admin",
        )
    return ", ".join(f"{status} {code}" for status, code, _ in attempts)


UPSTREAM_DOWN = ("service-unavailable", "no-instances")
"""The codes of enrollments' 503 when courses does not answer (or is not registered)."""


def break_the_courses_circuit(s: Scenario, *, recover: float = 30.0) -> str:
    """Courses stops: enrollments answers 503s, then its breaker opens; courses comes back.

    The last student's enrollment is dropped, then the admin enrolls them
    again while courses is down: enrollments asks courses, gets no answer
    and says so (503 ``no-instances`` or ``service-unavailable``); after a few such calls its
    breaker to courses opens and the answer is a fast 503 ``circuit-open``,
    without a call to courses. Courses starts again; once the breaker's
    open wait is over it lets a probe through, the probe succeeds, the
    breaker closes and the enrollment is made (201).
    """
    if s.services is None:
        return "skipped: courses cannot be stopped in process (the demo's processes can)"
    last = s.enrollment_ids[-1]
    s.call("DELETE", "enrollments", f"/v1/enrollments/{last}", expect=204, as_="admin")
    body = {"course_id": s.course_id, "user_id": s.student_ids[-1]}

    def enroll() -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        response = s.client.post(
            s.urls["enrollments"] + "/v1/enrollments", json=body, headers=s.credentials["admin"]
        )
        return response, time.perf_counter() - started

    def code_of(response: httpx.Response) -> str:
        if response.status_code != 503:
            raise StepFailed(
                f"with courses down, enrolling answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        if not response.headers.get("content-type", "").startswith(PROBLEM_TYPE):
            raise StepFailed(f"the 503 is not a problem: {response.text[:300]}")
        return str(response.json().get("code"))

    s.services.stop("courses")
    try:
        failing: list[tuple[str, float]] = []
        while True:
            response, took = enroll()
            code = code_of(response)
            if code == "circuit-open":
                break
            if code not in UPSTREAM_DOWN:
                raise StepFailed(f"with courses down, enrolling answered the problem {code!r}")
            failing.append((code, took))
            if len(failing) > 20:
                raise StepFailed(f"20 calls answered {code} and the breaker never opened")
        if not failing:
            raise StepFailed("the breaker was open before courses failed")
        opened = response.json()
        s.details.append(_problem_panel(opened, "POST enrollments/v1/enrollments"))
        fast = took
    finally:  # whatever happened, courses comes back
        s.services.start("courses")
    restarted = time.monotonic()

    def enrolled() -> dict[str, Any] | None:
        response, _ = enroll()
        if response.status_code == 201:
            found: dict[str, Any] = response.json()
            return found
        if response.status_code == 503:
            return None
        raise StepFailed(f"after courses came back, enrolling answered {response.status_code}: "
                         f"{response.text[:300]}")  # fmt: skip

    again = _poll("the breaker did not close after courses came back", recover, enrolled, 0.25)
    closed = time.monotonic() - restarted
    s.enrollment_ids[-1] = again["id"]
    down, slow = failing[-1]
    return (
        f"courses stopped: 503 {down} x {len(failing)} (last in {slow * 1000:.0f} ms), "
        f"then 503 circuit-open in {fast * 1000:.0f} ms; courses started again, "
        f"the breaker closed {closed:.1f} s later (201 enrolled again)"
    )


def _problem_panel(problem: Mapping[str, Any], subtitle: str) -> Panel:
    document = JSON.from_data(problem)
    document.text.no_wrap = False
    document.text.overflow = "fold"
    return Panel(document, title=f"503 {PROBLEM_TYPE}", subtitle=subtitle, expand=False)


def grade_assignments(s: Scenario) -> str:
    """Each student hands in lab 1 (grading asks enrollments); the instructor grades it."""
    percents = []
    for student, enrollment, score in zip(s.student_ids, s.enrollment_ids, SCORES, strict=True):
        submission = s.json(
            "POST",
            "grading",
            "/v1/submissions",
            expect=201,
            json={"enrollment_id": enrollment, "assignment": "Lab 1: retries"},
            as_=student,
        )
        s.submission_ids.append(submission["id"])
        grade = s.json(
            "POST",
            "grading",
            f"/v1/submissions/{submission['id']}/grade",
            expect=201,
            json={"score": score, "grader_id": s.instructor_id, "feedback": "Well argued."},
            as_="instructor",
        )
        percents.append(grade["percent"])
    average = sum(percents) / len(percents)
    # the gradebook is event sourced: the fold of GradebookOpened and GradeRecorded
    book = s.json("GET", "grading", f"/v1/gradebooks/{s.enrollment_ids[0]}", expect=200,
                  as_="instructor")  # fmt: skip
    entries = [(e["assignment"], e["percent"]) for e in book["entries"]]
    if entries != [("Lab 1: retries", percents[0])] or book["version"] != 2:
        raise StepFailed(f"the gradebook is not the fold of its events: {book}")
    return (
        f"201 x {len(percents)} submitted and graded, average {average:.1f}%; "
        f"gradebook v{book['version']} (opened, graded) from its events"
    )


def refuse_student_grading(s: Scenario) -> str:
    """A student may not grade, not even their own work: 403, with the permission named."""
    problem = s.problem(
        "POST",
        "grading",
        f"/v1/submissions/{s.submission_ids[0]}/grade",
        status=403,
        code="insufficient-permission",
        json={"score": 100, "grader_id": s.student_ids[0]},
        as_=s.student_ids[0],
        show=True,
    )
    return f"403 insufficient-permission: {problem.get('detail')}"


def refuse_invalid_grades(s: Scenario) -> str:
    """A malformed grade and a second grade of the same submission are refused."""
    problem = s.problem(
        "POST",
        "grading",
        f"/v1/submissions/{s.submission_ids[0]}/grade",
        status=422,
        code="validation-error",
        json={"score": -3, "grader_id": "barbara"},
        as_="instructor",
        show=True,
    )
    pointers = sorted(e.get("pointer") or e.get("parameter") for e in problem["errors"])
    if pointers != ["#/grader_id", "#/score"]:
        raise StepFailed(f"unexpected invalid fields: {pointers}")
    s.problem(
        "POST",
        "grading",
        f"/v1/submissions/{s.submission_ids[0]}/grade",
        status=409,
        code="already-graded",
        json={"score": 100, "grader_id": s.instructor_id},
        as_="instructor",
    )
    return "422 validation-error (#/score, #/grader_id), 409 already-graded"


def refuse_after_withdrawal(s: Scenario) -> str:
    """A withdrawn student can no longer hand in work, nor be withdrawn twice."""
    last = s.enrollment_ids[-1]
    s.call("POST", "enrollments", f"/v1/enrollments/{last}/withdraw", expect=200, as_="admin")
    s.problem(
        "POST",
        "enrollments",
        f"/v1/enrollments/{last}/withdraw",
        status=409,
        code="illegal-transition",
        as_="admin",
        show=True,
    )
    s.problem(
        "POST",
        "grading",
        "/v1/submissions",
        status=409,
        code="enrollment-inactive",
        json={"enrollment_id": last, "assignment": "Lab 2: events"},
        as_=s.student_ids[-1],
    )
    return "200 withdrawn, 409 illegal-transition withdrawing again, 409 enrollment-inactive"


def page_through_enrollments(s: Scenario) -> str:
    """List the course's enrollments four at a time, following the next links."""
    seen: list[str] = []
    url = s.urls["enrollments"] + "/v1/enrollments"
    params: Mapping[str, str | int] | None = {"course_id": s.course_id, "limit": 4}
    pages = 0
    while url:
        page = s.json("GET", "enrollments", url, expect=200, params=params, as_="instructor")
        pages += 1
        seen.extend(item["id"] for item in page["items"])
        url, params = page["links"]["next"], None
        if pages > len(s.enrollment_ids):
            raise StepFailed("the next links never end")
    if sorted(seen) != sorted(s.enrollment_ids):
        raise StepFailed(f"paging returned {len(seen)} enrollments, expected the {len(STUDENTS)}")
    return f"{len(seen)} enrollments in {pages} pages of at most 4"


def call_deprecated_route(s: Scenario) -> str:
    """The flat lesson list still works, and says it is deprecated."""
    response = s.call(
        "GET", "courses", f"/v1/courses/{s.course_id}/lessons", expect=200, as_="instructor"
    )
    headers = {name: response.headers.get(name) for name in ("deprecation", "sunset", "link")}
    missing = [name for name, value in headers.items() if not value]
    if missing:
        raise StepFailed(f"the deprecated route did not send {', '.join(missing)}")
    table = Table(title="GET /v1/courses/{id}/lessons", title_justify="left")
    table.add_column("header")
    table.add_column("value", overflow="fold")
    for name, value in headers.items():
        table.add_row(name.title(), value)
    s.details.append(table)
    return f"200 with {len(response.json())} lessons, Deprecation + Sunset + Link"


def call_unknown_version(s: Scenario) -> str:
    """An API version that does not exist is a 404 problem, not an HTML page."""
    problem = s.problem(
        "GET", "courses", "/v2/courses", status=404, code="not-found", as_="instructor"
    )
    return f"404 not-found: {problem.get('detail')}"


def send_forged_cursor(s: Scenario) -> str:
    """A cursor the client made up is a 400 problem."""
    s.problem(
        "GET",
        "identity",
        "/v1/users",
        status=400,
        code="invalid-cursor",
        params={"cursor": "bm90IGEgY3Vyc29y"},
        as_="admin",
    )
    return "400 invalid-cursor"


POISONED = ("CS102", "Event-driven systems")
"""The course whose ``CoursePublished`` enrollments fails to handle until the outage ends."""
DRILL = "/admin/drills/course-intake"
DEAD_LETTERS = "/admin/events/dead-letters"


def _poll(what: str, seconds: float, probe: Callable[[], T | None], every: float = 0.1) -> T:
    """``probe()`` every ``every`` s until it answers something, for at most ``seconds``.

    Raises:
        StepFailed: it answered nothing in time.
    """
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise StepFailed(f"{what} within {seconds:.0f} s")
        time.sleep(every)


def replay_dead_letter(s: Scenario) -> str:
    """A CoursePublished enrollments cannot handle is dead-lettered, then replayed after the fix.

    The admin stages an outage of enrollments' handler of published courses
    (a drill route, not in production); the instructor publishes a second
    course; the handler fails every attempt and the event lands in
    enrollments' dead-letter queue, with the reason, the attempts and the
    trace id. The outage ends (the fix), the admin replays the letter over
    the dead-letter API, enrollments hears of the course and the letter is
    gone.
    """
    code, title = POISONED
    body = {
        "code": code,
        "title": title,
        "organization_id": s.org_id,
        "instructor_id": s.instructor_id,
    }
    course = s.json("POST", "courses", "/v1/courses", expect=201, json=body, as_="instructor")
    path = f"/v1/courses/{course['id']}"
    module = s.json(
        "POST", "courses", f"{path}/modules", expect=201, json={"title": "Logs"}, as_="instructor"
    )
    s.call(
        "POST",
        "courses",
        f"{path}/modules/{module['id']}/lessons",
        expect=201,
        json={"title": "Dead letters and replays", "duration_minutes": 20},
        as_="instructor",
    )
    outage = {"failing": True, "reason": "catalogue re-indexing"}
    s.json("PUT", "enrollments", DRILL, expect=200, json=outage, as_="admin")
    try:
        s.json("POST", "courses", f"{path}/publish", expect=200, as_="instructor")

        def dead() -> dict[str, Any] | None:
            page = s.json(
                "GET",
                "enrollments",
                DEAD_LETTERS,
                expect=200,
                params={"type": "lms.course.published", "group": "enrollments", "limit": 500},
                as_="admin",
            )
            mine = [x for x in page["items"] if _event_data(x).get("course_id") == course["id"]]
            return mine[0] if mine else None

        letter = _poll(f"the CoursePublished of {code} was not dead-lettered", 30, dead)
    finally:  # whatever happened, the outage ends (the fix)
        s.json("PUT", "enrollments", DRILL, expect=200, json={"failing": False}, as_="admin")
    heard = f"/v1/published-courses/{course['id']}"
    s.problem("GET", "enrollments", heard, status=404, code="not-found", as_="admin")
    if letter["reason"] != "handler-failed" or "CourseIntakeDown" not in letter["error"]:
        raise StepFailed(f"the letter died of {letter['reason']}: {letter['error'][:200]}")
    if not letter["trace_id"]:
        raise StepFailed("the dead letter has no trace id")
    replayed = s.json(
        "POST",
        "enrollments",
        f"{DEAD_LETTERS}/replay",
        expect=200,
        json={"ids": [letter["id"]]},
        as_="admin",
    )
    if replayed["count"] != 1 or replayed["letter_ids"] != [letter["id"]] or replayed["error"]:
        raise StepFailed(f"the replay answered {replayed}")

    def published() -> dict[str, Any] | None:
        response = s.client.get(s.urls["enrollments"] + heard, headers=s.credentials["admin"])
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise StepFailed(f"GET {heard} answered {response.status_code}: {response.text[:300]}")
        found: dict[str, Any] = response.json()
        return found

    kept = _poll(f"enrollments did not hear of {code} after the replay", 30, published)
    if (kept["code"], kept["title"]) != POISONED:
        raise StepFailed(f"enrollments keeps the course as {kept['code']} {kept['title']!r}")
    s.problem(
        "GET",
        "enrollments",
        f"{DEAD_LETTERS}/{letter['id']}",
        status=404,
        code="not-found",
        as_="admin",
    )
    table = Table(title=f"dead letter {letter['id']}", title_justify="left")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for name in ("event_type", "reason", "attempts", "handler", "trace_id"):
        table.add_row(name, str(letter[name]))
    table.add_row("error", letter["error"].splitlines()[0][:120])
    table.add_row("replayed", f"{replayed['count']} letter, then 200 {heard}")
    s.details.append(table)
    return (
        f"{code}'s CoursePublished dead-lettered at enrollments ({letter['reason']}, "
        f"{letter['attempts']} attempts, trace {letter['trace_id']}); outage over, "
        f"replayed {replayed['count']}: enrollments heard of {code}, the letter is gone"
    )


def _event_data(letter: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON data of a dead letter's event (``{}`` if it is not a JSON object)."""
    try:
        data = json.loads(base64.b64decode(letter["data_base64"]))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def use_an_api_key(s: Scenario) -> str:
    """A roster script reads the term's students with an API key limited to reading users."""
    key = s.json(
        "POST",
        "identity",
        "/v1/api-keys",
        expect=201,
        json={"name": f"roster-export {s.org_slug}", "roles": ["admin"], "scopes": ["user:read"]},
        as_="admin",
    )
    script = {"x-api-key": key["secret"]}
    page = s.json(
        "GET",
        "identity",
        "/v1/users",
        expect=200,
        params={"organization_id": s.org_id, "role": "student", "limit": 50},
        headers=script,
    )
    if sorted(user["id"] for user in page["items"]) != sorted(s.student_ids):
        raise StepFailed(f"the roster has {len(page['items'])} students, not {len(STUDENTS)}")
    s.problem(
        "POST",
        "identity",
        "/v1/organizations",
        status=403,
        code="insufficient-permission",
        json={"name": "Rogue", "slug": f"rogue-{s.org_slug}"},
        headers=script,
    )
    return (
        f"201 key {key['secret'][:8]}… (shown once), 200 {len(page['items'])} students "
        "with X-API-Key, 403 writing with it (scope user:read)"
    )


STEPS: tuple[Step[Scenario], ...] = (
    Step("Check every service is ready", check_readiness),
    Step("Bootstrap and log in the admin", bootstrap_admin),
    Step("Create an organization", create_organization),
    Step("Register users", register_users),
    Step("Log in the instructor and students", log_in_users),
    Step("Throttle password guessing", throttle_password_guessing),
    Step("Build a course", build_course),
    Step("Edit the course with If-Match", edit_course_with_etag),
    Step("Refuse enrolling in a draft", refuse_draft_enrollment),
    Step("Publish the course", publish_course),
    Step("Enroll the students", enroll_students),
    Step("Drop a mistaken enrollment", drop_mistaken_enrollment),
    Step("Refuse illegal enrollments", refuse_illegal_enrollments),
    Step("Stop courses: the breaker opens, then closes", break_the_courses_circuit),
    Step("Submit and grade lab 1", grade_assignments),
    Step("Refuse a student grading", refuse_student_grading),
    Step("Refuse invalid grades", refuse_invalid_grades),
    Step("Refuse work after withdrawal", refuse_after_withdrawal),
    Step("Page through enrollments", page_through_enrollments),
    Step("Call a deprecated route", call_deprecated_route),
    Step("Call an unknown API version", call_unknown_version),
    Step("Send a forged cursor", send_forged_cursor),
    Step("Dead-letter a poisoned event and replay it", replay_dead_letter),
    Step("Read a roster with an API key", use_an_api_key),
)
