"""Where courses keeps its data: its tables, through ``service.db``.

:class:`CourseStore` is the repository the routes call. A course is read
with its outline in one go (modules and lessons are loaded with it, in
order); changes to a course lock its row first (``SELECT ... FOR UPDATE``
on PostgreSQL, the write lock on SQLite), so two requests appending to one
outline cannot take the same position. The catalogue code is unique per
organization by a constraint, turned into a 409 problem here.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.events import CoursePublished
from examples.persistence import violated
from lms_shared import Clock, Conflict, NotFound
from lms_shared.db import ConstraintViolation, Database, ListQuery, QuerySpec
from lms_shared.events import EventBus
from lms_shared.http import Precondition
from lms_shared.models import PageParams, apply_merge_patch

from .models import (
    COURSE_NOT_READY,
    Course,
    CourseCreate,
    CoursePatch,
    Lesson,
    LessonCreate,
    Module,
    ModuleCreate,
)
from .tables import CourseRow, LessonRow, ModuleRow

__all__ = ["COURSES", "CourseStore"]

COURSES = QuerySpec(
    CourseRow,
    filters={
        "status": ["eq"],
        "organization_id": ["eq", "in"],
        "instructor_id": ["eq"],
        "code": ["eq", "prefix"],
        "title": ["icontains"],
    },
    sorts=["created_at", "code", "title"],
    default_sort="created_at",
)
"""``GET /v1/courses``: ``?organization_id=...&status=published&code[prefix]=CS&sort=code``."""


def lesson_out(row: LessonRow) -> Lesson:
    """The API's view of a lesson row."""
    return Lesson(id=row.id, title=row.title, duration_minutes=row.duration_minutes)


def module_out(row: ModuleRow) -> Module:
    """The API's view of a module row and its lessons."""
    return Module(id=row.id, title=row.title, lessons=[lesson_out(item) for item in row.lessons])


def course_out(row: CourseRow) -> Course:
    """The API's view of a course row and its outline."""
    return Course.model_validate(
        {
            "id": row.id,
            "code": row.code,
            "title": row.title,
            "description": row.description,
            "organization_id": row.organization_id,
            "instructor_id": row.instructor_id,
            "status": row.status,
            "version": row.version,
            "modules": [module_out(module) for module in row.modules],
            "created_at": row.created_at,
            "published_at": row.published_at,
        }
    )


class CourseStore:
    """Courses with their modules and lessons, in the courses database.

    Args:
        db: the service's database (``service.db``).
        clock: stamps ``published_at`` (``created_at`` comes from the database layer).
        events: publishes :class:`~examples.events.CoursePublished` through its
            outbox, in the transaction that publishes the course.
    """

    def __init__(self, db: Database, clock: Clock, *, events: EventBus | None = None) -> None:
        self._db = db
        self._clock = clock
        self._events = events

    async def add_course(self, data: CourseCreate) -> Course:
        """Create a draft course.

        Raises:
            Conflict: the organization already has a course with that code.
        """

        async def insert(tx: AsyncSession) -> Course:
            row = CourseRow(**data.model_dump(), status="draft", modules=[])
            tx.add(row)
            await tx.flush()
            return course_out(row)

        try:
            return await self._db.run(insert)
        except ConstraintViolation as exc:
            if not violated(exc, "uq_courses_organization_id_code"):
                raise
            raise Conflict(f"the organization already has a course {data.code}") from exc

    async def course(self, course_id: UUID) -> Course:
        """One course with its outline.

        Raises:
            NotFound: it does not exist.
        """
        async with self._db.transaction(read_only=True) as tx:
            return course_out(await _course(tx, course_id))

    async def courses(
        self, query: ListQuery[CourseRow], params: PageParams
    ) -> tuple[list[Course], str | None]:
        """A page of courses, filtered and sorted as asked, and the next cursor."""
        async with self._db.transaction(read_only=True) as tx:
            rows, cursor = await query.page(tx, select(CourseRow), params)
        return [course_out(row) for row in rows], cursor

    async def patch(self, course_id: UUID, patch: object, precondition: Precondition) -> Course:
        """Apply a JSON Merge Patch to a course's title and description, if still current.

        The course's row is locked while ``If-Match`` is compared with its
        version, so two editors holding the same ETag cannot both win.

        Raises:
            NotFound: the course does not exist.
            PreconditionRequired: no ``If-Match`` (428).
            StaleVersion: ``If-Match`` is not the current version (412).
            ModelValidationError: the patch is invalid (422).
        """

        async def change(tx: AsyncSession) -> Course:
            row = await _course(tx, course_id, lock=True)
            precondition.check(row.version)
            changed = apply_merge_patch(course_out(row), patch, CoursePatch)
            row.title, row.description = changed.title, changed.description
            row.version += 1
            await tx.flush()
            return course_out(row)

        return await self._db.run(change)

    async def add_module(self, course_id: UUID, data: ModuleCreate) -> Module:
        """Append a module to a course.

        Raises:
            NotFound: the course does not exist.
        """

        async def append(tx: AsyncSession) -> Module:
            course = await _course(tx, course_id, lock=True)
            module = ModuleRow(title=data.title, position=len(course.modules), lessons=[])
            course.modules.append(module)
            await tx.flush()
            return module_out(module)

        return await self._db.run(append)

    async def add_lesson(self, course_id: UUID, module_id: UUID, data: LessonCreate) -> Lesson:
        """Append a lesson to a module of a course.

        Raises:
            NotFound: the course or the module does not exist.
        """

        async def append(tx: AsyncSession) -> Lesson:
            course = await _course(tx, course_id, lock=True)
            for module in course.modules:
                if module.id == module_id:
                    lesson = LessonRow(position=len(module.lessons), **data.model_dump())
                    module.lessons.append(lesson)
                    await tx.flush()
                    return lesson_out(lesson)
            raise NotFound(f"course {course_id} has no module {module_id}")

        return await self._db.run(append)

    async def publish(self, course_id: UUID) -> Course:
        """Publish a draft course that has at least one lesson, and say so (``CoursePublished``).

        Raises:
            NotFound: the course does not exist.
            Conflict: it is already published, or has no lesson yet.
        """

        async def publish(tx: AsyncSession) -> Course:
            course = await _course(tx, course_id, lock=True)
            if course.status == "published":
                raise Conflict(f"course {course.code} is already published")
            if not any(module.lessons for module in course.modules):
                raise Conflict(
                    f"course {course.code} needs at least one lesson before it is published",
                    code=COURSE_NOT_READY,
                )
            course.status = "published"
            course.published_at = self._clock.now()
            await tx.flush()
            if self._events is not None:  # in this transaction: both happen, or neither
                event = CoursePublished(
                    course_id=course.id,
                    organization_id=course.organization_id,
                    code=course.code,
                    title=course.title,
                    published_at=course.published_at,
                )
                await self._events.publish(event, outbox=tx, key=str(course.id))
            return course_out(course)

        return await self._db.run(publish)


async def _course(tx: AsyncSession, course_id: UUID, *, lock: bool = False) -> CourseRow:
    """A course with its outline; ``lock`` holds its row until the unit of work ends."""
    statement = select(CourseRow).where(CourseRow.id == course_id)
    if lock:
        statement = statement.with_for_update()
    course = await tx.scalar(statement)
    if course is None:
        raise NotFound(f"course {course_id} does not exist")
    return course
