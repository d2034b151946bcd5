"""Binary content mode, shared by the HTTP binding and transport messages.

The context attributes travel as canonical strings beside the data bytes.
Data of a JSON ``datacontenttype`` is written as a JSON document and read
back as a JSON value; any other data is read back as bytes; an empty body
is no data. A JSON-format event without ``datacontenttype`` carries JSON
data, so binary mode writes ``application/json`` explicitly (as the JSON
format asks).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from lms_shared.events._attributes import (
    CORE_ATTRIBUTES,
    check_name,
    extension_from_string,
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
from lms_shared.events._json import load_json
from lms_shared.events._transport import Message

__all__ = ["from_binary", "from_message", "to_binary", "to_message"]


def to_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """The event's attributes as canonical strings, and its data as bytes.

    Raises:
        InvalidEvent: JSON data cannot be written as JSON.
    """
    attributes = event.attributes()
    data = event.data
    if data is NO_DATA:
        return attributes, b""
    if isinstance(data, bytes):
        return attributes, data
    if isinstance(data, str) and not is_json_content_type(event.datacontenttype):
        return attributes, data.encode("utf-8")
    # the constructor allows nothing else than JSON data here
    attributes.setdefault("datacontenttype", "application/json")
    try:
        return attributes, orjson.dumps(data)
    except TypeError as exc:
        raise InvalidEvent(f"data cannot be written as JSON: {exc}") from None


def from_binary(
    attributes: Mapping[str, str], body: bytes, *, limits: EnvelopeLimits = DEFAULT_LIMITS
) -> CloudEvent:
    """An event from canonical-string attributes and data bytes.

    Raises:
        InvalidEvent: too large, too many attributes, a malformed value, or
            JSON data that does not parse.
    """
    if not isinstance(body, bytes):
        raise InvalidEvent("event data must be bytes")
    if len(attributes) > limits.max_attributes:
        raise InvalidEvent(f"an event carries at most {limits.max_attributes} attributes")
    size = len(body) + sum(len(k) + len(v) for k, v in attributes.items())
    if size > limits.max_bytes:
        raise InvalidEvent(f"the event is larger than {limits.max_bytes} bytes")
    for name in attributes:
        check_name(name)
    specversion = attributes.get("specversion")
    if specversion is None:
        raise InvalidEvent("required attribute 'specversion' is missing")
    if specversion != "1.0":
        raise InvalidEvent(f"specversion {specversion!r} is not supported (only 1.0)")
    for name in ("id", "source", "type"):
        if name not in attributes:
            raise InvalidEvent(f"required attribute {name!r} is missing")
    content_type = attributes.get("datacontenttype")
    data: Data = NO_DATA
    if body and content_type is not None and is_json_content_type(content_type):
        data = load_json(body, max_bytes=limits.max_bytes, max_depth=limits.max_depth - 1)
    elif body:
        data = body
    time = attributes.get("time")
    return CloudEvent(
        id=attributes["id"],
        source=attributes["source"],
        type=attributes["type"],
        datacontenttype=content_type,
        dataschema=attributes.get("dataschema"),
        subject=attributes.get("subject"),
        time=None if time is None else parse_timestamp(time),
        extensions={
            name: extension_from_string(name, value)
            for name, value in attributes.items()
            if name not in CORE_ATTRIBUTES
        },
        data=data,
    )


def to_message(event: CloudEvent) -> Message:
    """The event as a transport :class:`Message` (binary mode).

    Raises:
        InvalidEvent: JSON data cannot be written as JSON.
    """
    attributes, body = to_binary(event)
    return Message(attributes, body)


def from_message(message: Message, *, limits: EnvelopeLimits = DEFAULT_LIMITS) -> CloudEvent:
    """The event a transport :class:`Message` carries (bounded by ``limits``).

    Raises:
        InvalidEvent: the message is not a valid CloudEvent.
    """
    return from_binary(message.attributes, message.data, limits=limits)
