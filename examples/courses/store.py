"""Where courses keeps its data: in memory for now, behind one class.

The database layer replaces :class:`CourseStore` with the same methods.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from lms_shared import Clock, Conflict, NotFound
from lms_shared.http import PageParams, paginate

from .models import (
    COURSE_NOT_READY,
    Course,
    CourseCreate,
    CourseStatus,
    Lesson,
    LessonCreate,
    Module,
    ModuleCreate,
)

__all__ = ["CourseStore"]


class CourseStore:
    """Courses with their modules and lessons.

    Args:
        clock: stamps ``created_at`` and ``published_at``.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._courses: dict[UUID, Course] = {}

    async def add_course(self, data: CourseCreate) -> Course:
        """Create a draft course.

        Raises:
            Conflict: the organization already has a course with that code.
        """
        for course in self._courses.values():
            if course.organization_id == data.organization_id and course.code == data.code:
                raise Conflict(f"the organization already has a course {data.code}")
        course = Course(
            id=uuid.uuid4(), status="draft", created_at=self._clock.now(), **data.model_dump()
        )
        self._courses[course.id] = course
        return course.model_copy(deep=True)

    async def course(self, course_id: UUID) -> Course:
        """One course with its outline.

        Raises:
            NotFound: it does not exist.
        """
        return self._get(course_id).model_copy(deep=True)

    async def courses(
        self,
        params: PageParams,
        *,
        status: CourseStatus | None = None,
        organization_id: UUID | None = None,
    ) -> tuple[list[Course], str | None]:
        """A page of courses, optionally filtered, and the next cursor."""
        courses = [
            course.model_copy(deep=True)
            for course in self._courses.values()
            if (status is None or course.status == status)
            and (organization_id is None or course.organization_id == organization_id)
        ]
        return paginate(courses, params, key=lambda c: str(c.id))

    async def add_module(self, course_id: UUID, data: ModuleCreate) -> Module:
        """Append a module to a course.

        Raises:
            NotFound: the course does not exist.
        """
        module = Module(id=uuid.uuid4(), **data.model_dump())
        self._get(course_id).modules.append(module)
        return module.model_copy(deep=True)

    async def add_lesson(self, course_id: UUID, module_id: UUID, data: LessonCreate) -> Lesson:
        """Append a lesson to a module of a course.

        Raises:
            NotFound: the course or the module does not exist.
        """
        course = self._get(course_id)
        for module in course.modules:
            if module.id == module_id:
                lesson = Lesson(id=uuid.uuid4(), **data.model_dump())
                module.lessons.append(lesson)
                return lesson.model_copy()
        raise NotFound(f"course {course_id} has no module {module_id}")

    async def publish(self, course_id: UUID) -> Course:
        """Publish a draft course that has at least one lesson.

        Raises:
            NotFound: the course does not exist.
            Conflict: it is already published, or has no lesson yet.
        """
        course = self._get(course_id)
        if course.status == "published":
            raise Conflict(f"course {course.code} is already published")
        if not any(module.lessons for module in course.modules):
            raise Conflict(
                f"course {course.code} needs at least one lesson before it is published",
                code=COURSE_NOT_READY,
            )
        course.status = "published"
        course.published_at = self._clock.now()
        return course.model_copy(deep=True)

    def _get(self, course_id: UUID) -> Course:
        try:
            return self._courses[course_id]
        except KeyError:
            raise NotFound(f"course {course_id} does not exist") from None
