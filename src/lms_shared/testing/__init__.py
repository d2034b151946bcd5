"""Test doubles and helpers for services built on lms-shared.

Everything here is public API, for service authors' own tests:

* :class:`ManualClock`: a clock the test advances;
* :func:`service_client`: a started service and an httpx client for it;
* :func:`lifespan`: drive any ASGI app's lifespan;
* :func:`capture_logs`: the log lines a block wrote, as dicts;
* :func:`rollback_database`: a database whose changes a test rolls back;
* :class:`FakeIdentity`: access tokens for any principal, no identity service;
* :func:`memory_bus` and :class:`EventRecorder`: an event bus in memory, what
  it published and what became of each delivery;
* :class:`FakeServices`: other services in process under the real client
  (``service.client(name)``), with call assertions and fault injection;
* factories for every shared DTO (``CourseFactory.build()``, ...), built on
  polyfactory (the ``testing`` extra), imported on first use.

The pytest plugin (``lms_shared.testing.plugin``, registered as an entry
point) offers them as fixtures: ``manual_clock`` and ``logs``, and
``database``, ``database_url``, ``database_metadata`` and ``postgres_url``;
``fake_identity`` issues tokens.
"""

import importlib
from typing import TYPE_CHECKING, Any

from lms_shared.testing._auth import FakeIdentity
from lms_shared.testing._client import LifespanError, lifespan, service_client
from lms_shared.testing._clock import ManualClock
from lms_shared.testing._events import EventRecorder, memory_bus
from lms_shared.testing._logs import CapturedLogs, capture_logs
from lms_shared.testing._servers import in_ci, require_server, server_missing, tcp_unreachable
from lms_shared.testing._services import FakeRegistry, FakeService, FakeServices
from lms_shared.testing._telemetry import MetricReader, RecordedSpans, read_metrics, record_spans

if TYPE_CHECKING:
    from lms_shared.testing._db import DEFAULT_POSTGRES_URL, postgres_unreachable, rollback_database
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

# names imported on first use, each from its module: the per-test database
# helpers import SQLAlchemy, the factories need polyfactory (the "testing"
# extra); so a service's own tests, and the plugin, load neither until asked
_LAZY: dict[str, str] = {
    "DEFAULT_POSTGRES_URL": "_db",
    "postgres_unreachable": "_db",
    "rollback_database": "_db",
    "AssignmentCreateFactory": "_factories",
    "AssignmentFactory": "_factories",
    "AssignmentUpdateFactory": "_factories",
    "CourseCreateFactory": "_factories",
    "CourseFactory": "_factories",
    "CourseUpdateFactory": "_factories",
    "EnrollmentCreateFactory": "_factories",
    "EnrollmentFactory": "_factories",
    "EnrollmentUpdateFactory": "_factories",
    "GradeCreateFactory": "_factories",
    "GradeFactory": "_factories",
    "GradeUpdateFactory": "_factories",
    "LessonCreateFactory": "_factories",
    "LessonFactory": "_factories",
    "LessonUpdateFactory": "_factories",
    "LmsFactory": "_factories",
    "ModuleCreateFactory": "_factories",
    "ModuleFactory": "_factories",
    "ModuleUpdateFactory": "_factories",
    "OrganizationCreateFactory": "_factories",
    "OrganizationFactory": "_factories",
    "OrganizationUpdateFactory": "_factories",
    "SubmissionCreateFactory": "_factories",
    "SubmissionFactory": "_factories",
    "SubmissionUpdateFactory": "_factories",
    "UserCreateFactory": "_factories",
    "UserFactory": "_factories",
    "UserUpdateFactory": "_factories",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as exc:  # polyfactory is the "testing" extra
        raise ImportError(
            f"lms_shared.testing.{name} needs polyfactory: pip install 'lms-shared[testing]'"
        ) from exc
    return getattr(module, name)


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
    "EventRecorder",
    "FakeIdentity",
    "FakeRegistry",
    "FakeService",
    "FakeServices",
    "GradeCreateFactory",
    "GradeFactory",
    "GradeUpdateFactory",
    "LessonCreateFactory",
    "LessonFactory",
    "LessonUpdateFactory",
    "LifespanError",
    "LmsFactory",
    "ManualClock",
    "MetricReader",
    "ModuleCreateFactory",
    "ModuleFactory",
    "ModuleUpdateFactory",
    "OrganizationCreateFactory",
    "OrganizationFactory",
    "OrganizationUpdateFactory",
    "RecordedSpans",
    "SubmissionCreateFactory",
    "SubmissionFactory",
    "SubmissionUpdateFactory",
    "UserCreateFactory",
    "UserFactory",
    "UserUpdateFactory",
    "capture_logs",
    "in_ci",
    "lifespan",
    "memory_bus",
    "postgres_unreachable",
    "read_metrics",
    "record_spans",
    "require_server",
    "rollback_database",
    "server_missing",
    "service_client",
    "tcp_unreachable",
]
