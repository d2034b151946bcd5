"""The other services of the platform, as a calling service sees them.

Calls go through the chassis' own client (``service.client(name)``):
discovery (each example service registers itself in the local registry
under ``LMS_DISCOVERY_ADDRESS``/``LMS_DISCOVERY_PORT``, which the demo
runner sets), balancing, retries of reads, a breaker per service and per
instance, the caller's deadline and request id handed on, and this
service's service token (from identity, see :mod:`examples.access`).
A route then reads like this::

    try:
        user = await identity.get_json(f"/v1/users/{user_id}", model=UserView)
    except NotFound:
        raise NotFound(f"user {user_id} does not exist") from None

Every other failure is already a clear problem: an unreachable identity
is a 503 ``service-unavailable``, an open breaker a 503 ``circuit-open``,
a spent deadline a 504.

The views below hold only the fields the callers read, and ignore the
rest (a tolerant reader: the callee may add fields without breaking them).
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

import httpx
from pydantic import BaseModel, ConfigDict

from lms_shared import Service
from lms_shared.client import ServiceClient

__all__ = ["CourseView", "EnrollmentView", "UserView", "upstream"]


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class UserView(_View):
    """A user, as enrollments reads it from identity."""

    id: UUID
    role: str
    organization_id: UUID


class CourseView(_View):
    """A course, as enrollments reads it from courses."""

    id: UUID
    code: str
    status: str
    organization_id: UUID


class EnrollmentView(_View):
    """An enrollment, as grading reads it from enrollments."""

    id: UUID
    user_id: UUID
    course_id: UUID
    status: str


def upstream(
    service: Service,
    name: str,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> ServiceClient:
    """The client of service ``name``, with its readiness check (not critical).

    Args:
        service: the calling service.
        name: the called service.
        transports: per called service, an httpx transport to use instead
            of discovery and the network (in-process tests pass
            ``httpx.ASGITransport(app=other.app)``).
    """
    transport = (transports or {}).get(name)
    if transport is None:
        client = service.client(name)
    else:
        client = service.client(name, url=f"http://{name}.test", transport=transport)
    service.health.add(name, client.ping, critical=False)
    return client
