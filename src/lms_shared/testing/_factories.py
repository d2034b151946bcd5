"""Factories for every shared DTO (polyfactory), with valid, realistic values.

``CourseFactory.build()`` is a valid :class:`~lms_shared.models.Course`
(modules and lessons included); keyword arguments fix fields
(``EnrollmentFactory.build(status="active")``). Cross-field rules hold:
``ends_on`` is not before ``starts_on``, a grade's score is at most its
maximum, a video lesson has a video URL, only completed enrollments have
``completed_at``. Datetimes are UTC-aware. ``LmsFactory.seed_random(42)``
makes the values reproducible. A service writes factories for its own
models by subclassing :class:`LmsFactory`::

    class CourseRowFactory(LmsFactory[CourseRow]): ...

Needs the ``testing`` extra (``pip install 'lms-shared[testing]'``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, TypeVar

from polyfactory.decorators import post_generated
from polyfactory.factories.pydantic_factory import ModelFactory
from pydantic import BaseModel

from lms_shared.models import (
    Assignment,
    AssignmentCreate,
    AssignmentUpdate,
    Course,
    CourseCreate,
    CourseUpdate,
    Enrollment,
    EnrollmentCreate,
    EnrollmentStatus,
    EnrollmentUpdate,
    Grade,
    GradeCreate,
    GradeUpdate,
    Lesson,
    LessonCreate,
    LessonKind,
    LessonUpdate,
    Module,
    ModuleCreate,
    ModuleUpdate,
    Organization,
    OrganizationCreate,
    OrganizationUpdate,
    Submission,
    SubmissionCreate,
    SubmissionUpdate,
    User,
    UserCreate,
    UserUpdate,
)

__all__ = [
    "AssignmentCreateFactory",
    "AssignmentFactory",
    "AssignmentUpdateFactory",
    "CourseCreateFactory",
    "CourseFactory",
    "CourseUpdateFactory",
    "EnrollmentCreateFactory",
    "EnrollmentFactory",
    "EnrollmentUpdateFactory",
    "GradeCreateFactory",
    "GradeFactory",
    "GradeUpdateFactory",
    "LessonCreateFactory",
    "LessonFactory",
    "LessonUpdateFactory",
    "LmsFactory",
    "ModuleCreateFactory",
    "ModuleFactory",
    "ModuleUpdateFactory",
    "OrganizationCreateFactory",
    "OrganizationFactory",
    "OrganizationUpdateFactory",
    "SubmissionCreateFactory",
    "SubmissionFactory",
    "SubmissionUpdateFactory",
    "UserCreateFactory",
    "UserFactory",
    "UserUpdateFactory",
]

T = TypeVar("T", bound=BaseModel)

_LOCALES = ("en", "en-GB", "fr", "de-CH", "pt-BR", "es-419", "zh-Hant-TW")


class LmsFactory(ModelFactory[T], Generic[T]):
    """Base factory: UTC datetimes, short collections, realistic LMS values.

    Fields are filled by name where a name implies a format (``slug``,
    ``email``, ``title``, ``locale``, ...), so subclasses for other models
    with such fields get valid values too.
    """

    __is_base_factory__ = True
    __check_model__ = False
    __min_collection_length__ = 0
    __max_collection_length__ = 3

    @classmethod
    def get_provider_map(cls) -> dict[Any, Any]:
        """Datetimes are UTC-aware (the models refuse naive ones)."""
        return {
            **super().get_provider_map(),
            datetime: lambda: cls.__faker__.date_time_between("-2y", "+1y", tzinfo=UTC),
        }

    @classmethod
    def version(cls) -> int:
        """A small version number."""
        return cls.__random__.randint(1, 20)

    @post_generated
    @classmethod
    def updated_at(cls, created_at: datetime) -> datetime:
        """Not before ``created_at``."""
        return created_at + timedelta(seconds=cls.__random__.randint(0, 90 * 86_400))

    @classmethod
    def slug(cls) -> str:
        """Two or three dash-separated lower-case words."""
        return "-".join(cls.__faker__.words(cls.__random__.randint(2, 3))).lower()

    @classmethod
    def email(cls) -> str:
        """An address at an example domain."""
        return (
            f"{cls.__faker__.user_name()}@{cls.__random__.choice(['example.org', 'example.edu'])}"
        )

    @classmethod
    def given_name(cls) -> str:
        """A first name."""
        return str(cls.__faker__.first_name())

    @classmethod
    def family_name(cls) -> str:
        """A last name."""
        return str(cls.__faker__.last_name())

    @classmethod
    def name(cls) -> str:
        """An organization's name."""
        return f"{cls.__faker__.last_name()} {cls.__random__.choice(['University', 'College'])}"

    @classmethod
    def title(cls) -> str:
        """A short title."""
        return str(cls.__faker__.sentence(nb_words=4)).rstrip(".")

    @classmethod
    def summary(cls) -> str:
        """A paragraph."""
        return str(cls.__faker__.paragraph())

    @classmethod
    def content(cls) -> str:
        """A few paragraphs."""
        return "\n\n".join(cls.__faker__.paragraphs(3))

    @classmethod
    def instructions(cls) -> str:
        """A paragraph."""
        return str(cls.__faker__.paragraph())

    @classmethod
    def feedback(cls) -> str:
        """A sentence or two."""
        return str(cls.__faker__.paragraph(nb_sentences=2))

    @classmethod
    def locale(cls) -> str:
        """A BCP 47 tag."""
        return cls.__random__.choice(_LOCALES)

    @classmethod
    def language(cls) -> str:
        """A BCP 47 tag."""
        return cls.__random__.choice(_LOCALES)

    @classmethod
    def website(cls) -> str:
        """An https URL."""
        return f"https://{cls.__faker__.domain_name()}/"

    @classmethod
    def tags(cls) -> list[str]:
        """Up to three slugs."""
        return [cls.slug() for _ in range(cls.__random__.randint(0, 3))]

    @classmethod
    def attachments(cls) -> list[str]:
        """Up to two file URLs."""
        return [
            f"https://files.example.org/{cls.__faker__.uuid4()}.pdf"
            for _ in range(cls.__random__.randint(0, 2))
        ]


V = TypeVar("V")


def _maybe(cls: type[LmsFactory[Any]], value: V) -> V | None:
    return value if cls.__random__.random() < 0.7 else None


class _Dates(LmsFactory[T], Generic[T]):
    __is_base_factory__ = True

    @classmethod
    def starts_on(cls) -> date | None:
        start: date = cls.__faker__.date_between("-1y", "+1y")
        return _maybe(cls, start)

    @post_generated
    @classmethod
    def ends_on(cls, starts_on: date | None) -> date | None:
        if starts_on is None:
            return None
        return _maybe(cls, starts_on + timedelta(days=cls.__random__.randint(0, 200)))


class _Window(LmsFactory[T], Generic[T]):
    __is_base_factory__ = True

    @post_generated
    @classmethod
    def due_at(cls, opens_at: datetime | None) -> datetime:
        start = opens_at or cls.__faker__.date_time_between("-1y", "+1y", tzinfo=UTC)
        return start + timedelta(hours=cls.__random__.randint(1, 24 * 30))


class _Points(LmsFactory[T], Generic[T]):
    __is_base_factory__ = True

    @classmethod
    def max_score(cls) -> float:
        return float(cls.__random__.choice([10, 20, 50, 100]))

    @post_generated
    @classmethod
    def score(cls, max_score: float | None) -> float:
        return round(cls.__random__.uniform(0, max_score or 100.0), 1)


class _Video(LmsFactory[T], Generic[T]):
    __is_base_factory__ = True

    @post_generated
    @classmethod
    def video_url(cls, kind: LessonKind | None) -> str | None:
        url = f"https://videos.example.org/{cls.__faker__.uuid4()}.mp4"
        return url if kind is LessonKind.VIDEO else _maybe(cls, url)


class OrganizationFactory(LmsFactory[Organization]):
    """Builds :class:`~lms_shared.models.Organization`."""


class OrganizationCreateFactory(LmsFactory[OrganizationCreate]):
    """Builds :class:`~lms_shared.models.OrganizationCreate`."""


class OrganizationUpdateFactory(LmsFactory[OrganizationUpdate]):
    """Builds :class:`~lms_shared.models.OrganizationUpdate`."""


class UserFactory(LmsFactory[User]):
    """Builds :class:`~lms_shared.models.User`."""


class UserCreateFactory(LmsFactory[UserCreate]):
    """Builds :class:`~lms_shared.models.UserCreate`."""


class UserUpdateFactory(LmsFactory[UserUpdate]):
    """Builds :class:`~lms_shared.models.UserUpdate`."""


class LessonFactory(_Video[Lesson]):
    """Builds :class:`~lms_shared.models.Lesson`."""

    __set_as_default_factory_for_type__ = True


class LessonCreateFactory(_Video[LessonCreate]):
    """Builds :class:`~lms_shared.models.LessonCreate`."""


class LessonUpdateFactory(_Video[LessonUpdate]):
    """Builds :class:`~lms_shared.models.LessonUpdate`."""


class ModuleFactory(LmsFactory[Module]):
    """Builds :class:`~lms_shared.models.Module` with up to three lessons."""

    __set_as_default_factory_for_type__ = True

    @classmethod
    def lessons(cls) -> list[Lesson]:
        """Up to three lessons (polyfactory would fill the 200-item bound)."""
        return LessonFactory.batch(cls.__random__.randint(0, 3))


class ModuleCreateFactory(LmsFactory[ModuleCreate]):
    """Builds :class:`~lms_shared.models.ModuleCreate`."""


class ModuleUpdateFactory(LmsFactory[ModuleUpdate]):
    """Builds :class:`~lms_shared.models.ModuleUpdate`."""


class CourseFactory(_Dates[Course]):
    """Builds :class:`~lms_shared.models.Course` with its outline."""

    @classmethod
    def modules(cls) -> list[Module]:
        """Up to three modules."""
        return ModuleFactory.batch(cls.__random__.randint(0, 3))


class CourseCreateFactory(_Dates[CourseCreate]):
    """Builds :class:`~lms_shared.models.CourseCreate`."""


class CourseUpdateFactory(_Dates[CourseUpdate]):
    """Builds :class:`~lms_shared.models.CourseUpdate`."""


class EnrollmentFactory(LmsFactory[Enrollment]):
    """Builds :class:`~lms_shared.models.Enrollment` (``completed_at`` matches the status)."""

    @post_generated
    @classmethod
    def completed_at(cls, status: EnrollmentStatus, updated_at: datetime) -> datetime | None:
        """Set exactly for completed enrollments."""
        return updated_at if status is EnrollmentStatus.COMPLETED else None


class EnrollmentCreateFactory(LmsFactory[EnrollmentCreate]):
    """Builds :class:`~lms_shared.models.EnrollmentCreate`."""


class EnrollmentUpdateFactory(LmsFactory[EnrollmentUpdate]):
    """Builds :class:`~lms_shared.models.EnrollmentUpdate`."""


class AssignmentFactory(_Window[Assignment]):
    """Builds :class:`~lms_shared.models.Assignment` (due after it opens)."""


class AssignmentCreateFactory(_Window[AssignmentCreate]):
    """Builds :class:`~lms_shared.models.AssignmentCreate`."""


class AssignmentUpdateFactory(_Window[AssignmentUpdate]):
    """Builds :class:`~lms_shared.models.AssignmentUpdate`."""


class SubmissionFactory(LmsFactory[Submission]):
    """Builds :class:`~lms_shared.models.Submission`."""


class SubmissionCreateFactory(LmsFactory[SubmissionCreate]):
    """Builds :class:`~lms_shared.models.SubmissionCreate`."""


class SubmissionUpdateFactory(LmsFactory[SubmissionUpdate]):
    """Builds :class:`~lms_shared.models.SubmissionUpdate`."""


class GradeFactory(_Points[Grade]):
    """Builds :class:`~lms_shared.models.Grade` (score at most max_score)."""


class GradeCreateFactory(_Points[GradeCreate]):
    """Builds :class:`~lms_shared.models.GradeCreate`."""


class GradeUpdateFactory(_Points[GradeUpdate]):
    """Builds :class:`~lms_shared.models.GradeUpdate`."""
