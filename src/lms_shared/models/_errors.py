"""The errors of the data models and their problem codes (a leaf of ``lms_shared.models``).

Every error here is a :class:`~lms_shared.errors.ProblemError`, so raised
from a route (or from code a route calls) it becomes the RFC 9457 problem
response below; outside HTTP it is a typed exception to catch::

    LmsError
    ├── SchemaVersionError            no upcaster path from a payload's version to the model's
    └── ProblemError
        ├── ModelValidationError      422 validation-error: per-field ``errors`` (JSON pointers)
        ├── BadRequest
        │   ├── MalformedPatch        400 malformed-patch: not a JSON object / not JSON
        │   ├── UnknownFields         400 unknown-field: ``?fields=`` names a field not allowed
        │   ├── MalformedPayload      400 malformed-payload: bytes a codec cannot decode
        │   └── InvalidIdempotencyKey 400 invalid-idempotency-key: missing or malformed
        ├── Conflict
        │   ├── IllegalTransition     409 illegal-transition: e.g. a dropped enrollment made active
        │   └── IdempotencyInFlight   409 idempotency-in-flight: the same key is being processed
        ├── PreconditionFailed
        │   └── StaleVersion          412 precondition-failed: ``If-Match`` names an old version
        ├── PreconditionRequired      428 precondition-required: ``If-Match`` missing
        └── IdempotencyKeyReused      422 idempotency-key-reused: same key, another request body
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lms_shared import errors
from lms_shared.errors import (
    BadRequest,
    Conflict,
    ErrorCode,
    LmsError,
    PreconditionFailed,
    ProblemError,
)

__all__ = [
    "PROBLEMS",
    "IdempotencyInFlight",
    "IdempotencyKeyReused",
    "IllegalTransition",
    "InvalidIdempotencyKey",
    "MalformedPatch",
    "MalformedPayload",
    "ModelValidationError",
    "PreconditionRequired",
    "SchemaVersionError",
    "StaleVersion",
    "UnknownFields",
]

MALFORMED_PATCH = errors.ErrorCode("malformed-patch", 400, "Malformed merge patch")
MALFORMED_PAYLOAD = errors.ErrorCode("malformed-payload", 400, "Malformed payload")
UNKNOWN_FIELD = errors.ErrorCode("unknown-field", 400, "Unknown field requested")
INVALID_IDEMPOTENCY_KEY = errors.ErrorCode(
    "invalid-idempotency-key", 400, "Missing or invalid Idempotency-Key"
)
ILLEGAL_TRANSITION = errors.ErrorCode("illegal-transition", 409, "Illegal status transition")
IDEMPOTENCY_IN_FLIGHT = errors.ErrorCode(
    "idempotency-in-flight", 409, "A request with this Idempotency-Key is in progress"
)
PRECONDITION_REQUIRED = errors.ErrorCode("precondition-required", 428, "Precondition required")
IDEMPOTENCY_KEY_REUSED = errors.ErrorCode(
    "idempotency-key-reused", 422, "Idempotency-Key reused with another request"
)

PROBLEMS: tuple[ErrorCode, ...] = (
    MALFORMED_PATCH,
    MALFORMED_PAYLOAD,
    UNKNOWN_FIELD,
    INVALID_IDEMPOTENCY_KEY,
    ILLEGAL_TRANSITION,
    IDEMPOTENCY_IN_FLIGHT,
    PRECONDITION_REQUIRED,
    IDEMPOTENCY_KEY_REUSED,
)
"""The problem codes of this module, for the service's catalogue."""


class ModelValidationError(ProblemError):
    """422: data failed validation; ``errors`` lists every invalid field.

    Rendered exactly like FastAPI's own request validation problem, so a
    service that validates data itself (a merge-patched document, a stored
    payload, a message) answers the same way.

    Attributes:
        errors: RFC 9457 entries: ``{"pointer": "#/title", "detail": ..., "type": ...}``.
    """

    code = errors.VALIDATION_ERROR

    def __init__(self, field_errors: Sequence[dict[str, Any]], detail: str | None = None) -> None:
        self.errors = list(field_errors)
        count = len(self.errors)
        super().__init__(
            detail or f"{count} invalid field{'s' if count != 1 else ''}", errors=self.errors
        )


class MalformedPatch(BadRequest):
    """400: a JSON Merge Patch that is not JSON, or not a JSON object."""

    code = MALFORMED_PATCH


class MalformedPayload(BadRequest):
    """400: bytes that the codec cannot decode (not JSON, not MessagePack)."""

    code = MALFORMED_PAYLOAD


class UnknownFields(BadRequest):
    """400: a sparse fieldset (``?fields=``) names fields that are not allowed.

    Attributes:
        fields: the offending names, in request order.
        allowed: the names that may be requested, sorted.
    """

    code = UNKNOWN_FIELD

    def __init__(self, fields: Sequence[str], allowed: Sequence[str]) -> None:
        self.fields = list(fields)
        self.allowed = sorted(allowed)
        names = ", ".join(repr(f) for f in self.fields)
        plural = "s" if len(self.fields) != 1 else ""
        super().__init__(
            f"unknown field{plural} {names} in ?fields=; allowed: {', '.join(self.allowed)}",
            parameter="fields",
            fields=self.fields,
        )


class InvalidIdempotencyKey(BadRequest):
    """400: the ``Idempotency-Key`` header is missing where required, or malformed."""

    code = INVALID_IDEMPOTENCY_KEY


class IllegalTransition(Conflict):
    """409: a status change the lifecycle does not allow.

    Attributes:
        current: the status now.
        requested: the status asked for.
        allowed: the statuses reachable from ``current``, sorted.
    """

    code = ILLEGAL_TRANSITION

    def __init__(self, entity: str, current: str, requested: str, allowed: Sequence[str]) -> None:
        self.current = current = str(current)  # a StrEnum member reads as its value
        self.requested = requested = str(requested)
        self.allowed = sorted(str(a) for a in allowed)
        reachable = ", ".join(self.allowed) or "none (final status)"
        super().__init__(
            f"{entity} cannot go from {current!r} to {requested!r}; allowed: {reachable}",
            current=current,
            requested=requested,
            allowed=self.allowed,
        )


class IdempotencyInFlight(Conflict):
    """409: a request with the same ``Idempotency-Key`` is still being processed."""

    code = IDEMPOTENCY_IN_FLIGHT

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class IdempotencyKeyReused(ProblemError):
    """422: the ``Idempotency-Key`` was already used for a different request body."""

    code = IDEMPOTENCY_KEY_REUSED


class StaleVersion(PreconditionFailed):
    """412: the write was based on an old version of the resource.

    Attributes:
        current: the resource's current version (its ETag is sent back).
    """

    def __init__(self, detail: str, *, current: int | None = None) -> None:
        self.current = current
        headers = {"ETag": f'"{current}"'} if current is not None else None
        super().__init__(detail, headers=headers)


class PreconditionRequired(ProblemError):
    """428: a conditional write without ``If-Match`` where one is required."""

    code = PRECONDITION_REQUIRED


class SchemaVersionError(LmsError):
    """A payload's schema version cannot be turned into the model's version.

    Attributes:
        schema: the schema name.
        version: the payload's version.
    """

    def __init__(self, schema: str, version: int, detail: str) -> None:
        self.schema = schema
        self.version = version
        super().__init__(f"{schema} v{version}: {detail}")
