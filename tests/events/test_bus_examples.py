"""The example platform's events: courses publishes through its outbox, enrollments hears it.

Both services run in this process on their own SQLite databases and share
the embedded event log of one state folder, as the demo's processes do.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select

from examples.courses.app import build_service as build_courses
from examples.enrollments.app import build_service as build_enrollments
from examples.enrollments.tables import PublishedCourseRow
from examples.events import CoursePublished
from lms_shared import Service, load_settings
from lms_shared.events import Message
from lms_shared.events._log import LogTransport
from lms_shared.events.sql import SqlOutbox
from lms_shared.testing import FakeIdentity, service_client
from lms_shared.testing._events import EventRecorder

IDENTITY = FakeIdentity()


def build(tmp_path: Path) -> tuple[Service, Service]:
    settings = {"state_dir": tmp_path, "database_migrate_on_start": True}
    courses = build_courses(settings=load_settings(**settings))
    enrollments = build_enrollments(settings=load_settings(**settings))
    IDENTITY.install(courses)
    IDENTITY.install(enrollments)
    return courses, enrollments


async def test_publishing_a_course_reaches_enrollments_once(tmp_path: Path) -> None:
    courses, enrollments = build(tmp_path)
    heard = EventRecorder(enrollments.events)
    instructor = IDENTITY.headers("barbara", roles=["instructor"], audience="courses")
    async with service_client(enrollments), service_client(courses, headers=instructor) as client:
        created = await client.post(
            "/v1/courses",
            json={
                "code": "CS101",
                "title": "Distributed systems",
                "organization_id": str(uuid.uuid4()),
                "instructor_id": str(uuid.uuid4()),
            },
        )
        assert created.status_code == 201, created.text
        course = created.json()
        module = await client.post(f"/v1/courses/{course['id']}/modules", json={"title": "One"})
        lesson = await client.post(
            f"/v1/courses/{course['id']}/modules/{module.json()['id']}/lessons",
            json={"title": "Clocks", "duration_minutes": 30},
        )
        assert lesson.status_code == 201, lesson.text
        published = await client.post(f"/v1/courses/{course['id']}/publish")
        assert published.status_code == 200, published.text
        [outcome] = await heard.wait_for(lambda o: len(o) == 1)
        assert (outcome.result, outcome.group) == ("handled", "enrollments")

        async with enrollments.db.transaction(read_only=True) as tx:
            rows = (await tx.scalars(select(PublishedCourseRow))).all()
        assert [(str(r.course_id), r.code, r.title) for r in rows] == [
            (course["id"], "CS101", "Distributed systems")
        ]
        assert await courses.events.flush() == 0
        assert await SqlOutbox(courses.db).pending() == 0

        # a redelivery of the same event changes nothing (the inbox)
        log = courses.events.transport
        assert isinstance(log, LogTransport)
        again = await log.read("1")  # the one event of the log
        assert again is not None
        assert again.id == outcome.event_id
        await log.publish([again])
        await heard.wait_for(lambda o: len(o) == 2)
        assert heard.outcomes[-1].result == "duplicate"


async def test_a_poisoned_event_is_dead_lettered_in_the_database(tmp_path: Path) -> None:
    courses, enrollments = build(tmp_path)
    heard = EventRecorder(enrollments.events)
    async with service_client(enrollments), service_client(courses):
        poison = Message(
            {
                "id": uuid.uuid4().hex,
                "source": "/courses",
                "specversion": "1.0",
                "type": CoursePublished.event_type(),
                "datacontenttype": "application/json",
                "schemaversion": "1",
            },
            b'{"course_id": "not a uuid"}',
        )
        await courses.events.transport.publish([poison])
        [outcome] = await heard.wait_for(lambda o: len(o) == 1)
        assert (outcome.result, outcome.reason) == ("dead", "invalid-event-data")
        [letter] = await enrollments.events.dead_letters.list()
        assert letter.event_id == poison.id
        assert letter.group == "enrollments"
        assert "course_id" in letter.error
