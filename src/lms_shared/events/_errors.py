"""The errors of the event bus and their problem codes (a leaf of ``lms_shared.events``).

One root, :class:`EventError`; the errors a webhook receiver or a route can
let escape are also :class:`~lms_shared.errors.ProblemError` subclasses, so
they answer with an RFC 9457 problem::

    LmsError
    └── EventError                    root of everything lms_shared.events raises
        ├── InvalidEvent              400 invalid-event: not a valid CloudEvent (any decode failure)
        ├── EventSchemaError          400: a valid envelope whose payload this service cannot read
        │   ├── UnknownEventType      400 unknown-event-type: no model for the type
        │   ├── UnsupportedEventVersion 400 unsupported-event-version: newer than known, no upcaster
        │   └── InvalidEventData      422 invalid-event-data: the payload fails its model
        ├── PublishFailed             503 event-publish-failed: the broker did not confirm
        ├── TransportUnavailable      503 events-unavailable: the broker cannot be reached
        ├── DeadLetterStoreUnavailable 503 dead-letters-unavailable: dead letters cannot be kept
        └── ReplayUnsupported         the transport keeps no history to rewind

Every error carries ``reason``: what failed, in words safe to log and to
show a client (never the payload itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lms_shared.errors import BadRequest, ErrorCode, LmsError, ServiceUnavailable

__all__ = [
    "DEAD_LETTERS_UNAVAILABLE",
    "INVALID_EVENT",
    "INVALID_EVENT_DATA",
    "PROBLEMS",
    "PUBLISH_FAILED",
    "TRANSPORT_UNAVAILABLE",
    "UNKNOWN_EVENT_TYPE",
    "UNSUPPORTED_EVENT_VERSION",
    "DeadLetterStoreUnavailable",
    "EventError",
    "EventSchemaError",
    "InvalidEvent",
    "InvalidEventData",
    "PublishFailed",
    "ReplayUnsupported",
    "TransportUnavailable",
    "UnknownEventType",
    "UnsupportedEventVersion",
]

INVALID_EVENT = ErrorCode("invalid-event", 400, "Invalid CloudEvent")
UNKNOWN_EVENT_TYPE = ErrorCode("unknown-event-type", 400, "Unknown event type")
UNSUPPORTED_EVENT_VERSION = ErrorCode(
    "unsupported-event-version", 400, "Unsupported event schema version"
)
INVALID_EVENT_DATA = ErrorCode("invalid-event-data", 422, "Event data failed validation")
PUBLISH_FAILED = ErrorCode("event-publish-failed", 503, "Events could not be published")
TRANSPORT_UNAVAILABLE = ErrorCode("events-unavailable", 503, "Event broker unavailable")
DEAD_LETTERS_UNAVAILABLE = ErrorCode(
    "dead-letters-unavailable", 503, "Dead letters cannot be stored"
)

PROBLEMS: tuple[ErrorCode, ...] = (
    INVALID_EVENT,
    UNKNOWN_EVENT_TYPE,
    UNSUPPORTED_EVENT_VERSION,
    INVALID_EVENT_DATA,
    PUBLISH_FAILED,
    TRANSPORT_UNAVAILABLE,
    DEAD_LETTERS_UNAVAILABLE,
)


class EventError(LmsError):
    """Root of every error :mod:`lms_shared.events` raises.

    Attributes:
        reason: what failed, safe to log and to show a client.
    """

    reason: str


class InvalidEvent(EventError, BadRequest):
    """400: bytes, headers or values that are not a valid CloudEvent.

    Raised by every parser of the envelope (JSON format, batches, the HTTP
    binding, transport messages) for every decode failure: malformed JSON,
    too large, too deep, a missing or mistyped attribute.
    """

    code = INVALID_EVENT

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class EventSchemaError(EventError, BadRequest):
    """A valid envelope whose type, version or data this service cannot read.

    On publish nothing is sent; on consume the event is dead-lettered with
    ``reason``.

    Attributes:
        type: the event type.
        version: the event's schema version (``None`` when it had none).
    """

    def __init__(self, reason: str, *, type: str, version: int | None = None) -> None:
        self.reason = reason
        self.type = type
        self.version = version
        super().__init__(reason)


class UnknownEventType(EventSchemaError):
    """No event model is registered for the event's type."""

    code = UNKNOWN_EVENT_TYPE


class UnsupportedEventVersion(EventSchemaError):
    """The event's version is newer than any known, or no upcaster reaches the model."""

    code = UNSUPPORTED_EVENT_VERSION


class InvalidEventData(EventSchemaError):
    """The event's data fails its model's validation.

    Attributes:
        errors: one entry per failure: ``{"loc": ..., "msg": ..., "type": ...}``
            (pydantic's shape, without the input values).
    """

    code = INVALID_EVENT_DATA

    def __init__(
        self,
        reason: str,
        *,
        type: str,
        version: int | None = None,
        errors: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.errors = list(errors)
        super().__init__(reason, type=type, version=version)


class PublishFailed(EventError, ServiceUnavailable):
    """503: the broker did not confirm every message (down, refused, timed out).

    Any subset of the messages may have been stored: publishing again is
    safe because consumers deduplicate by event ``id``.
    """

    code = PUBLISH_FAILED

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TransportUnavailable(EventError, ServiceUnavailable):
    """503: the broker cannot be reached (start, ping or subscribe failed)."""

    code = TRANSPORT_UNAVAILABLE

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class DeadLetterStoreUnavailable(EventError, ServiceUnavailable):
    """503: the dead-letter store cannot keep a letter (full, or its backend is down).

    The bus then leaves the event with the broker and tries again later.
    """

    code = DEAD_LETTERS_UNAVAILABLE

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ReplayUnsupported(EventError):
    """The transport keeps no history (``keeps_history`` is false), so it cannot rewind."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
