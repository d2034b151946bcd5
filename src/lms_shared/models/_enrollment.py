"""Enrollments of users in courses, and their status lifecycle.

::

    invited ──> active ──> completed
                   └─────> dropped

``completed`` and ``dropped`` are final. :func:`transition` is the one way
to change a status; it refuses anything else with
:class:`~lms_shared.models.IllegalTransition` (a 409 problem).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Final, Literal, Self
from uuid import UUID

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from lms_shared.models._base import LmsModel, Resource
from lms_shared.models._errors import IllegalTransition
from lms_shared.models._types import Percentage, UtcDatetime

__all__ = [
    "ENROLLMENT_TRANSITIONS",
    "Enrollment",
    "EnrollmentCreate",
    "EnrollmentStatus",
    "EnrollmentUpdate",
    "check_transition",
    "transition",
]


class EnrollmentStatus(StrEnum):
    """Where an enrollment is in its lifecycle."""

    INVITED = "invited"
    ACTIVE = "active"
    COMPLETED = "completed"
    DROPPED = "dropped"


ENROLLMENT_TRANSITIONS: Final[Mapping[EnrollmentStatus, frozenset[EnrollmentStatus]]] = (
    MappingProxyType(
        {
            EnrollmentStatus.INVITED: frozenset({EnrollmentStatus.ACTIVE}),
            EnrollmentStatus.ACTIVE: frozenset(
                {EnrollmentStatus.COMPLETED, EnrollmentStatus.DROPPED}
            ),
            EnrollmentStatus.COMPLETED: frozenset(),
            EnrollmentStatus.DROPPED: frozenset(),
        }
    )
)
"""The statuses each status may change to."""

_EXAMPLE: JsonDict = {
    "course_id": "5c9e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a",
    "user_id": "3f2b8c1d-7e6a-4f5b-8c9d-0a1b2c3d4e5f",
}
_Progress = Annotated[Percentage, Field(description="share of the course completed, 0-100")]


class EnrollmentCreate(LmsModel, schema_name="lms.enrollment.create"):
    """A new enrollment: an invitation, or a direct (active) enrollment."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    course_id: UUID = Field(description="the course")
    user_id: UUID = Field(description="the enrolled user")
    status: Literal[EnrollmentStatus.INVITED, EnrollmentStatus.ACTIVE] = Field(
        default=EnrollmentStatus.INVITED, description="invited (default) or active"
    )


class EnrollmentUpdate(LmsModel, schema_name="lms.enrollment.update"):
    """A status change (checked against the lifecycle) or a progress update."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "active"}]})

    status: EnrollmentStatus | None = Field(default=None, description="the new status")
    progress: _Progress | None = None


class Enrollment(Resource, schema_name="lms.enrollment"):
    """A user's enrollment in a course."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
                    "version": 2,
                    "created_at": "2026-02-01T08:00:00Z",
                    "updated_at": "2026-02-03T10:15:00Z",
                    **_EXAMPLE,
                    "status": "active",
                    "progress": 12.5,
                    "completed_at": None,
                }
            ]
        }
    )

    course_id: UUID = Field(description="the course")
    user_id: UUID = Field(description="the enrolled user")
    status: EnrollmentStatus = Field(description="invited, active, completed or dropped")
    progress: _Progress = 0.0
    completed_at: UtcDatetime | None = Field(
        default=None, description="when it was completed (completed enrollments only)"
    )

    @model_validator(mode="after")
    def _completion(self) -> Self:
        if (self.status is EnrollmentStatus.COMPLETED) != (self.completed_at is not None):
            raise PydanticCustomError(
                "completion_mismatch",
                "completed_at is set exactly when the status is completed",
            )
        return self


def check_transition(current: EnrollmentStatus, requested: EnrollmentStatus) -> None:
    """Refuse a status change the lifecycle does not allow.

    Raises:
        IllegalTransition: ``requested`` is not reachable from ``current``
            (staying in the same status included).
    """
    allowed = ENROLLMENT_TRANSITIONS[current]
    if requested not in allowed:
        raise IllegalTransition("an enrollment", current, requested, [s.value for s in allowed])


def transition(
    enrollment: Enrollment, requested: EnrollmentStatus, *, at: UtcDatetime
) -> Enrollment:
    """The enrollment in its new status (a copy; the store bumps the version).

    Args:
        enrollment: the enrollment as stored.
        requested: the new status.
        at: now (from the service's clock): completion time, ``updated_at``.

    Raises:
        IllegalTransition: the lifecycle does not allow the change (409).
        ValueError: ``at`` is a naive datetime.
    """
    if at.tzinfo is None:
        raise ValueError("transition(at=...) needs a timezone-aware datetime")
    at = at.astimezone(UTC)
    check_transition(enrollment.status, requested)
    completed = requested is EnrollmentStatus.COMPLETED
    return enrollment.model_copy(
        update={
            "status": requested,
            "completed_at": at if completed else None,
            "progress": 100.0 if completed else enrollment.progress,
            "updated_at": at,
        }
    )
