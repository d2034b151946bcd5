"""Test doubles and helpers for services built on lms-shared.

Everything here is public API, for service authors' own tests:

* :class:`ManualClock`: a clock the test advances;
* :func:`service_client`: a started service and an httpx client for it;
* :func:`lifespan`: drive any ASGI app's lifespan;
* :func:`capture_logs`: the log lines a block wrote, as dicts;
* :func:`rollback_database`: a database whose changes a test rolls back;
* :class:`FakeIdentity`: access tokens for any principal, no identity service;
* factories for every shared DTO (``CourseFactory.build()``, ...), built on
  polyfactory (the ``testing`` extra), imported on first use.

The pytest plugin (``lms_shared.testing.plugin``, registered as an entry
point) offers them as fixtures: ``manual_clock`` and ``logs``, and
``database``, ``database_url``, ``database_metadata`` and ``postgres_url``;
``fake_identity`` issues tokens.
"""

from typing import TYPE_CHECKING, Any

from lms_shared.testing._auth import FakeIdentity
from lms_shared.testing._client import LifespanError, lifespan, service_client
from lms_shared.testing._clock import ManualClock
from lms_shared.testing._db import DEFAULT_POSTGRES_URL, postgres_unreachable, rollback_database
from lms_shared.testing._logs import CapturedLogs, capture_logs

if TYPE_CHECKING:
    from lms_shared.testing._factories import (
        AssignmentCreateFactory,
        AssignmentFactory,
        AssignmentUpdateFactory,
        CourseCreateFactory,
        CourseFactory,
        CourseUpdateFactory,
        EnrollmentCreateFactory,
        EnrollmentFactory,
        EnrollmentUpdateFactory,
        GradeCreateFactory,
        GradeFactory,
        GradeUpdateFactory,
        LessonCreateFactory,
        LessonFactory,
        LessonUpdateFactory,
        LmsFactory,
        ModuleCreateFactory,
        ModuleFactory,
        ModuleUpdateFactory,
        OrganizationCreateFactory,
        OrganizationFactory,
        OrganizationUpdateFactory,
        SubmissionCreateFactory,
        SubmissionFactory,
        SubmissionUpdateFactory,
        UserCreateFactory,
        UserFactory,
        UserUpdateFactory,
    )

# factories need polyfactory (the "testing" extra): imported on first use, so
# the pytest plugin and the other helpers work without it
_FACTORIES = frozenset(
    {
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
    }
)


def __getattr__(name: str) -> Any:
    if name in _FACTORIES:
        try:
            from lms_shared.testing import _factories  # noqa: PLC0415
        except ImportError as exc:  # polyfactory is the "testing" extra
            raise ImportError(
                f"lms_shared.testing.{name} needs polyfactory: pip install 'lms-shared[testing]'"
            ) from exc
        return getattr(_factories, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_POSTGRES_URL",
    "AssignmentCreateFactory",
    "AssignmentFactory",
    "AssignmentUpdateFactory",
    "CapturedLogs",
    "CourseCreateFactory",
    "CourseFactory",
    "CourseUpdateFactory",
    "EnrollmentCreateFactory",
    "EnrollmentFactory",
    "EnrollmentUpdateFactory",
    "FakeIdentity",
    "GradeCreateFactory",
    "GradeFactory",
    "GradeUpdateFactory",
    "LessonCreateFactory",
    "LessonFactory",
    "LessonUpdateFactory",
    "LifespanError",
    "LmsFactory",
    "ManualClock",
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
    "capture_logs",
    "lifespan",
    "postgres_unreachable",
    "rollback_database",
    "service_client",
]
