"""The CloudEvents JSON format and JSON batch format (``application/cloudevents+json``,
``application/cloudevents-batch+json``), bounded and strict.

Parsing is bounded before and while it runs: the size is checked before
the bytes reach the parser, orjson refuses nesting beyond 1024 levels while
parsing (a clean error, never a ``RecursionError``), and an iterative walk
then applies the configured depth. Every failure is :class:`InvalidEvent`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import orjson

from lms_shared.events._attributes import (
    CORE_ATTRIBUTES,
    check_extension,
    parse_binary,
    parse_timestamp,
)
from lms_shared.events._envelope import (
    DEFAULT_LIMITS,
    NO_DATA,
    CloudEvent,
    Data,
    EnvelopeLimits,
    is_json_content_type,
)
from lms_shared.events._errors import InvalidEvent

__all__ = [
    "BATCH_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "event_to_object",
    "from_json",
    "from_json_batch",
    "load_json",
    "to_json",
    "to_json_batch",
]

JSON_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"

_STRING_ATTRIBUTES = ("id", "source", "specversion", "type", "datacontenttype", "dataschema")


def from_json(body: bytes | str, *, limits: EnvelopeLimits = DEFAULT_LIMITS) -> CloudEvent:
    """Parse one event in the JSON format.

    Raises:
        InvalidEvent: too large, too deep, malformed JSON, or not a valid CloudEvent.
    """
    document = load_json(body, max_bytes=limits.max_bytes, max_depth=limits.max_depth)
    return event_from_object(document, limits)


def from_json_batch(
    body: bytes | str, *, limits: EnvelopeLimits = DEFAULT_LIMITS
) -> list[CloudEvent]:
    """Parse a JSON batch (an array of events in the JSON format; may be empty).

    Raises:
        InvalidEvent: too large, too deep, too many events, not an array, or
            any element not a valid CloudEvent (the reason names its index).
    """
    document = load_json(body, max_bytes=limits.max_batch_bytes, max_depth=limits.max_depth + 1)
    if not isinstance(document, list):
        raise InvalidEvent("a batch must be a JSON array of events")
    if len(document) > limits.max_batch_events:
        raise InvalidEvent(f"a batch holds at most {limits.max_batch_events} events")
    events = []
    for index, item in enumerate(document):
        try:
            events.append(event_from_object(item, limits))
        except InvalidEvent as exc:
            raise InvalidEvent(f"event [{index}]: {exc.reason}") from None
    return events


def to_json(event: CloudEvent) -> bytes:
    """The event in the JSON format (UTF-8).

    Raises:
        InvalidEvent: ``data`` cannot be written as JSON.
    """
    return _dumps(event_to_object(event))


def to_json_batch(events: Iterable[CloudEvent]) -> bytes:
    """The events as one JSON batch document.

    Raises:
        InvalidEvent: an event's ``data`` cannot be written as JSON.
    """
    return _dumps([event_to_object(event) for event in events])


def load_json(body: bytes | str, *, max_bytes: int, max_depth: int) -> Any:
    """Parse JSON bytes no larger than ``max_bytes`` and no deeper than ``max_depth``.

    Raises:
        InvalidEvent: not bytes or str, too large, malformed, or too deep.
    """
    if isinstance(body, bytearray | memoryview):
        body = bytes(body)
    if not isinstance(body, bytes | str):
        raise InvalidEvent("a JSON document must be bytes or str")
    size = len(body) if isinstance(body, bytes) else len(body.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidEvent(f"the document is larger than {max_bytes} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"malformed JSON: {exc}") from None
    _check_depth(document, max_depth)
    return document


def _check_depth(document: Any, max_depth: int) -> None:
    if max_depth >= 1 and isinstance(document, dict):  # the usual payload: a flat object
        for value in document.values():
            if isinstance(value, dict | list):
                break
        else:
            return
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise InvalidEvent(f"the document is nested deeper than {max_depth} levels")
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def event_from_object(document: Any, limits: EnvelopeLimits = DEFAULT_LIMITS) -> CloudEvent:
    """A CloudEvent from a parsed JSON-format object (``null`` members are absent).

    Raises:
        InvalidEvent: not an object, or not a valid CloudEvent.
    """
    if not isinstance(document, dict):
        raise InvalidEvent("an event must be a JSON object")
    members = {k: v for k, v in document.items() if v is not None or k == "data"}
    has_data, has_base64 = "data" in members, "data_base64" in members
    if has_data and has_base64:
        raise InvalidEvent("data and data_base64 are mutually exclusive")
    data = members.pop("data", NO_DATA)
    encoded = members.pop("data_base64", None)
    if len(members) > limits.max_attributes:
        raise InvalidEvent(f"an event carries at most {limits.max_attributes} attributes")
    specversion = members.get("specversion")
    if specversion is None:
        raise InvalidEvent("required attribute 'specversion' is missing")
    if specversion != "1.0":
        raise InvalidEvent(f"specversion {specversion!r} is not supported (only 1.0)")
    for name in ("id", "source", "type"):
        if name not in members:
            raise InvalidEvent(f"required attribute {name!r} is missing")
    for name in (*_STRING_ATTRIBUTES, "subject", "time"):
        if name in members and not isinstance(members[name], str):
            raise InvalidEvent(f"attribute {name!r} must be a JSON string")
    content_type = members.get("datacontenttype")
    payload: Data = data
    if encoded is not None:
        if not isinstance(encoded, str):
            raise InvalidEvent("data_base64 must be a base64 string")
        payload = parse_binary(encoded, "data_base64")
    elif has_data and not is_json_content_type(content_type) and not isinstance(data, str):
        raise InvalidEvent(f"data for {content_type!r} must be a JSON string")
    extensions = {}
    for name, value in members.items():
        if name in CORE_ATTRIBUTES:
            continue
        if isinstance(value, float) or not isinstance(value, bool | int | str):
            raise InvalidEvent(f"extension {name!r} must be a boolean, integer or string")
        extensions[name] = check_extension(name, value)
    time = members.get("time")
    return CloudEvent(
        id=members["id"],
        source=members["source"],
        type=members["type"],
        datacontenttype=content_type,
        dataschema=members.get("dataschema"),
        subject=members.get("subject"),
        time=None if time is None else parse_timestamp(time),
        extensions=extensions,
        data=payload,
    )


def event_to_object(event: CloudEvent) -> dict[str, Any]:
    """The JSON-format object of an event (native JSON types for Boolean and Integer)."""
    document: dict[str, Any] = event.attributes()
    for name, value in event.extensions.items():
        if isinstance(value, bool | int):
            document[name] = value
    if isinstance(event.data, bytes):
        document["data_base64"] = base64.b64encode(event.data).decode("ascii")
    elif event.data is not NO_DATA:
        document["data"] = event.data
    return document


def _dumps(document: Any) -> bytes:
    try:
        return orjson.dumps(document)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise InvalidEvent(f"data cannot be written as JSON: {exc}") from None
