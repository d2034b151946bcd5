"""The demo's scripted scenario: a term at Northwind University.

Each step is a function that drives the services over HTTP (see
:mod:`examples.driver`), checks what they answered and returns a one-line
summary; it raises :class:`StepFailed` when a service answered something
else. Illegal requests are part of the script: the step passes when the
service refuses them with the right RFC 9457 problem.

The services keep their data between runs (each has its own database), so
the scenario plays on whatever earlier runs left: every run is a new term,
with its own organization (``northwind``, then ``northwind-2``, ...) whose
users, course and enrollments are new too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.table import Table

from examples.driver import Driver, Step, StepFailed

__all__ = ["STEPS", "Scenario"]

STUDENTS = (
    "Ada Lovelace",
    "Alan Turing",
    "Katherine Johnson",
    "Edsger Dijkstra",
    "Radia Perlman",
    "Donald Knuth",
)
SCORES = (92.0, 78.5, 88.0, 95.0, 81.0, 70.5)
OUTLINE = {
    "Foundations": [("Why services fail", 25), ("Timeouts and retries", 30)],
    "Messaging": [("Events and the outbox", 35), ("Idempotent consumers", 30)],
}


@dataclass
class Scenario(Driver):
    """The driver, plus the ids the steps made so far."""

    org_id: str = ""
    org_slug: str = ""
    admin_id: str = ""
    instructor_id: str = ""
    student_ids: list[str] = field(default_factory=list)
    course_id: str = ""
    enrollment_ids: list[str] = field(default_factory=list)
    submission_ids: list[str] = field(default_factory=list)


def check_readiness(s: Scenario) -> str:
    """Every service is ready, and sees the services it depends on."""
    edges: list[str] = []
    for name in s.urls:
        report = s.json("GET", name, "/health/ready", expect=200)
        checks = report.get("checks", {})
        for check, result in checks.items():
            if result["status"] != "pass":
                raise StepFailed(f"{name} reports {check} as {result['status']}")
        if checks:
            edges.append(f"{name} → {', '.join(checks)}")
    return f"{len(s.urls)} ready; {'; '.join(edges)}"


def earlier_terms(s: Scenario) -> list[int]:
    """The terms earlier runs left: 1 for ``northwind``, n for ``northwind-n``."""
    terms: list[int] = []
    url = s.urls["identity"] + "/v1/organizations"
    params: Mapping[str, str | int] | None = {"slug[prefix]": "northwind", "limit": 200}
    while url:
        page = s.json("GET", "identity", url, expect=200, params=params)
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
    org = s.json("POST", "identity", "/v1/organizations", expect=201, json=body)
    s.org_id = org["id"]
    s.problem("POST", "identity", "/v1/organizations", status=409, code="conflict", json=body)
    kept = f"{len(earlier)} kept from earlier runs" if earlier else "the first run"
    return f"201 {org['name']} ({org['slug']}; {kept}), then 409 conflict for the same slug"


def register_users(s: Scenario) -> str:
    """Register an admin, an instructor and the students."""

    def register(name: str, role: str) -> str:
        email = f"{name.lower().replace(' ', '.')}@{s.org_slug}.edu"
        body = {"email": email, "name": name, "role": role, "organization_id": s.org_id}
        return str(s.json("POST", "identity", "/v1/users", expect=201, json=body)["id"])

    s.admin_id = register("Grace Hopper", "admin")
    s.instructor_id = register("Barbara Liskov", "instructor")
    s.student_ids = [register(name, "student") for name in STUDENTS]
    return f"201 x {2 + len(STUDENTS)}: 1 admin, 1 instructor, {len(STUDENTS)} students"


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
            "organization_id": s.org_id,
            "instructor_id": s.instructor_id,
        },
    )
    s.course_id = course["id"]
    lessons = 0
    for title, outline in OUTLINE.items():
        module = s.json(
            "POST",
            "courses",
            f"/v1/courses/{s.course_id}/modules",
            expect=201,
            json={"title": title},
        )
        for lesson, minutes in outline:
            s.call(
                "POST",
                "courses",
                f"/v1/courses/{s.course_id}/modules/{module['id']}/lessons",
                expect=201,
                json={"title": lesson, "duration_minutes": minutes},
            )
            lessons += 1
    return f"201 CS101 ({course['status']}): {len(OUTLINE)} modules, {lessons} lessons"


def refuse_draft_enrollment(s: Scenario) -> str:
    """Enrolling in a course that is still a draft is refused."""
    problem = s.problem(
        "POST",
        "enrollments",
        "/v1/enrollments",
        status=409,
        code="course-not-published",
        json={"course_id": s.course_id, "user_id": s.student_ids[0]},
        show=True,
    )
    return f"409 {problem['code']}"


def publish_course(s: Scenario) -> str:
    """Publish the course."""
    course = s.json("POST", "courses", f"/v1/courses/{s.course_id}/publish", expect=200)
    if course["status"] != "published":
        raise StepFailed(f"the course is {course['status']} after publishing")
    return f"200 CS101 {course['status']}"


def enroll_students(s: Scenario) -> str:
    """Enroll every student (enrollments asks identity and courses)."""
    s.enrollment_ids = [
        s.json(
            "POST",
            "enrollments",
            "/v1/enrollments",
            expect=201,
            json={"course_id": s.course_id, "user_id": student},
        )["id"]
        for student in s.student_ids
    ]
    return f"201 x {len(s.enrollment_ids)} students in CS101"


def drop_mistaken_enrollment(s: Scenario) -> str:
    """A dropped enrollment is gone from reads (kept soft-deleted); the student re-enrolls."""
    first = s.enrollment_ids[0]
    s.call("DELETE", "enrollments", f"/v1/enrollments/{first}", expect=204)
    s.problem("GET", "enrollments", f"/v1/enrollments/{first}", status=404, code="not-found")
    again = s.json(
        "POST",
        "enrollments",
        "/v1/enrollments",
        expect=201,
        json={"course_id": s.course_id, "user_id": s.student_ids[0]},
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
        )
    return ", ".join(f"{status} {code}" for status, code, _ in attempts)


def grade_assignments(s: Scenario) -> str:
    """Each student hands in lab 1 (grading asks enrollments); the instructor grades it."""
    percents = []
    for enrollment, score in zip(s.enrollment_ids, SCORES, strict=False):
        submission = s.json(
            "POST",
            "grading",
            "/v1/submissions",
            expect=201,
            json={"enrollment_id": enrollment, "assignment": "Lab 1: retries"},
        )
        s.submission_ids.append(submission["id"])
        grade = s.json(
            "POST",
            "grading",
            f"/v1/submissions/{submission['id']}/grade",
            expect=201,
            json={"score": score, "grader_id": s.instructor_id, "feedback": "Well argued."},
        )
        percents.append(grade["percent"])
    average = sum(percents) / len(percents)
    return f"201 x {len(percents)} submitted and graded, average {average:.1f}%"


def refuse_invalid_grades(s: Scenario) -> str:
    """A malformed grade and a second grade of the same submission are refused."""
    problem = s.problem(
        "POST",
        "grading",
        f"/v1/submissions/{s.submission_ids[0]}/grade",
        status=422,
        code="validation-error",
        json={"score": -3, "grader_id": "barbara"},
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
    )
    return "422 validation-error (#/score, #/grader_id), 409 already-graded"


def refuse_after_withdrawal(s: Scenario) -> str:
    """A withdrawn student can no longer hand in work."""
    last = s.enrollment_ids[-1]
    s.call("POST", "enrollments", f"/v1/enrollments/{last}/withdraw", expect=200)
    s.problem(
        "POST",
        "grading",
        "/v1/submissions",
        status=409,
        code="enrollment-inactive",
        json={"enrollment_id": last, "assignment": "Lab 2: events"},
    )
    return "200 withdrawn, then 409 enrollment-inactive"


def page_through_enrollments(s: Scenario) -> str:
    """List the course's enrollments four at a time, following the next links."""
    seen: list[str] = []
    url = s.urls["enrollments"] + "/v1/enrollments"
    params: Mapping[str, str | int] | None = {"course_id": s.course_id, "limit": 4}
    pages = 0
    while url:
        page = s.json("GET", "enrollments", url, expect=200, params=params)
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
    response = s.call("GET", "courses", f"/v1/courses/{s.course_id}/lessons", expect=200)
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
    problem = s.problem("GET", "courses", "/v2/courses", status=404, code="not-found")
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
    )
    return "400 invalid-cursor"


STEPS: tuple[Step[Scenario], ...] = (
    Step("Check every service is ready", check_readiness),
    Step("Create an organization", create_organization),
    Step("Register users", register_users),
    Step("Build a course", build_course),
    Step("Refuse enrolling in a draft", refuse_draft_enrollment),
    Step("Publish the course", publish_course),
    Step("Enroll the students", enroll_students),
    Step("Drop a mistaken enrollment", drop_mistaken_enrollment),
    Step("Refuse illegal enrollments", refuse_illegal_enrollments),
    Step("Submit and grade lab 1", grade_assignments),
    Step("Refuse invalid grades", refuse_invalid_grades),
    Step("Refuse work after withdrawal", refuse_after_withdrawal),
    Step("Page through enrollments", page_through_enrollments),
    Step("Call a deprecated route", call_deprecated_route),
    Step("Call an unknown API version", call_unknown_version),
    Step("Send a forged cursor", send_forged_cursor),
)
