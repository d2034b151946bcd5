"""Binary content mode, shared by the HTTP binding and transport messages.

The context attributes travel as canonical strings beside the data bytes.
Data of a JSON ``datacontenttype`` is written as a JSON document and read
back as a JSON value; any other data is read back as bytes; an empty body
is no data. A JSON-format event without ``datacontenttype`` carries JSON
data, so binary mode writes ``application/json`` explicitly (as the JSON
format asks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar, cast

import orjson

from lms_shared.events._attributes import (
    CORE_ATTRIBUTES,
    canonical,
    check_media_type,
    check_names,
    check_string,
    check_uri,
    check_uri_reference,
    extension_from_string,
    format_timestamp,
    parse_timestamp,
)
from lms_shared.events._envelope import (
    DEFAULT_LIMITS,
    NO_DATA,
    CloudEvent,
    Data,
    EnvelopeLimits,
    is_json_content_type,
    unchecked_event,
)
from lms_shared.events._errors import InvalidEvent
from lms_shared.events._json import load_json
from lms_shared.events._transport import Message, unchecked_message

__all__ = ["from_binary", "from_message", "to_binary", "to_message", "to_messages"]

T = TypeVar("T")


def to_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """The event's attributes as canonical strings, and its data as bytes.

    Raises:
        InvalidEvent: JSON data cannot be written as JSON.
    """
    extensions = {name: canonical(value) for name, value in event.extensions.items()}
    return _binary(event, extensions)


def _binary(event: CloudEvent, extensions: Mapping[str, str]) -> tuple[dict[str, str], bytes]:
    """:func:`to_binary` with the extensions' canonical strings already made."""
    attributes = {
        "id": event.id,
        "source": event.source,
        "specversion": event.specversion,
        "type": event.type,
    }
    content_type = event.datacontenttype
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    if event.dataschema is not None:
        attributes["dataschema"] = event.dataschema
    if event.subject is not None:
        attributes["subject"] = event.subject
    if event.time is not None:
        attributes["time"] = format_timestamp(event.time)
    attributes.update(extensions)
    data = event.data
    if data is NO_DATA:
        return attributes, b""
    if isinstance(data, bytes):
        return attributes, data
    if isinstance(data, str) and not is_json_content_type(content_type):
        return attributes, data.encode("utf-8")
    # the constructor allows nothing else than JSON data here
    attributes.setdefault("datacontenttype", "application/json")
    try:
        return attributes, orjson.dumps(data)
    except TypeError as exc:
        raise InvalidEvent(f"data cannot be written as JSON: {exc}") from None


_REMEMBERED: dict[tuple[str, str], Any] = {}
REMEMBER_VALUES = 512
"""Checked attribute values remembered (then forgotten all at once)."""
REMEMBER_LENGTH = 256
"""Longer values are checked every time."""


def _remembered(name: str, value: str, check: Callable[[str, str], T]) -> T:
    """``check(name, value)``, remembered when it passed.

    The events of a batch repeat most attributes (source, type, content
    type, schema version, trace and correlation ids): a check is a pure
    function of the name and the value, so a value that passed once passes
    again and parses to the same immutable value. Values that fail are
    checked every time (the same error each time).
    """
    key = (name, value)
    found = _REMEMBERED.get(key, _UNSEEN)
    if found is not _UNSEEN:
        return cast(T, found)
    result = check(name, value)
    if len(value) <= REMEMBER_LENGTH:
        if len(_REMEMBERED) >= REMEMBER_VALUES:
            _REMEMBERED.clear()
        _REMEMBERED[key] = result
    return result


_UNSEEN = object()


def from_binary(
    attributes: Mapping[str, str], body: bytes, *, limits: EnvelopeLimits = DEFAULT_LIMITS
) -> CloudEvent:
    """An event from canonical-string attributes and data bytes.

    Every attribute is checked once, as the :class:`CloudEvent`
    constructor checks it, and the event is built from the checked values.

    Raises:
        InvalidEvent: too large, too many attributes, a malformed value, or
            JSON data that does not parse.
    """
    if not isinstance(body, bytes):
        raise InvalidEvent("event data must be bytes")
    if len(attributes) > limits.max_attributes:
        raise InvalidEvent(f"an event carries at most {limits.max_attributes} attributes")
    size = len(body) + sum(map(len, attributes)) + sum(map(len, attributes.values()))
    if size > limits.max_bytes:
        raise InvalidEvent(f"the event is larger than {limits.max_bytes} bytes")
    check_names(attributes)
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
    parsed_time = None if time is None else parse_timestamp(time)
    extensions = {
        name: _remembered(name, value, extension_from_string)
        for name, value in attributes.items()
        if name not in CORE_ATTRIBUTES
    }
    # what the constructor checks, in its order (data fits: JSON only for a JSON type)
    event_id = check_string("id", attributes["id"])
    source = _remembered("source", attributes["source"], check_uri_reference)
    event_type = _remembered("type", attributes["type"], check_string)
    if content_type is not None:
        _remembered("datacontenttype", content_type, check_media_type)
    dataschema = attributes.get("dataschema")
    if dataschema is not None:
        check_uri("dataschema", dataschema)
    subject = attributes.get("subject")
    if subject is not None:
        check_string("subject", subject)
    return unchecked_event(
        id=event_id,
        source=source,
        type=event_type,
        datacontenttype=content_type,
        dataschema=dataschema,
        subject=subject,
        time=parsed_time,
        extensions=MappingProxyType(extensions),
        data=data,
    )


def to_message(event: CloudEvent) -> Message:
    """The event as a transport :class:`Message` (binary mode).

    Raises:
        InvalidEvent: JSON data cannot be written as JSON.
    """
    attributes, body = to_binary(event)
    return unchecked_message(attributes, body)


def to_messages(events: Sequence[CloudEvent]) -> list[Message]:
    """:func:`to_message` of each event; extensions the events share are written once.

    Events built together (:meth:`EventRegistry.encode_all
    <lms_shared.events.EventRegistry.encode_all>`) share one extensions
    mapping, so its canonical strings are made once per batch.

    Raises:
        InvalidEvent: JSON data cannot be written as JSON.
    """
    written: dict[int, dict[str, str]] = {}  # by id(): every event lives until the end
    messages = []
    for event in events:
        extensions = event.extensions
        strings = written.get(id(extensions))
        if strings is None:
            strings = {name: canonical(value) for name, value in extensions.items()}
            written[id(extensions)] = strings
        attributes, body = _binary(event, strings)
        messages.append(unchecked_message(attributes, body))
    return messages


def from_message(message: Message, *, limits: EnvelopeLimits = DEFAULT_LIMITS) -> CloudEvent:
    """The event a transport :class:`Message` carries (bounded by ``limits``).

    Raises:
        InvalidEvent: the message is not a valid CloudEvent.
    """
    return from_binary(message.attributes, message.data, limits=limits)
