"""The CloudEvents NATS protocol binding, and event types as NATS subjects.

Pure functions, no NATS client needed (the transport in ``_nats`` uses them):

* :func:`nats_headers` writes a :class:`Message` in *binary mode*: every
  context attribute, extensions and ``datacontenttype`` included, as a
  ``ce-<name>`` header whose value is percent-encoded as the binding asks
  (space, ``"``, ``%`` and everything outside printable ASCII, as UTF-8
  bytes, upper-case hex); the data bytes are the payload.
* :func:`message_from_nats` reads one back, bounded by
  :class:`~lms_shared.events.EnvelopeLimits`: a ``Content-Type`` of
  ``application/cloudevents...`` is *structured mode* (the JSON format in
  the payload); anything else is binary mode (a ``Content-Type`` without
  ``ce-datacontenttype``, as the HTTP binding writes it, is taken as
  ``datacontenttype``). Header names are
  case-insensitive; values are unquoted (RFC 7230 quoted strings, from older
  senders) and percent-decoded once, refusing invalid UTF-8. Every failure
  is :class:`~lms_shared.events.InvalidEvent`.
* :func:`subject_for` maps an event type to the subject it is published on
  under a prefix: each dot-separated part of the type is one subject token,
  with every character outside ``A-Za-z0-9_-`` percent-encoded (an empty
  part becomes ``%``), so any type is a valid subject and two types never
  share one.

See the NATS protocol binding of CloudEvents (1.0.3), section 3.1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from lms_shared.events._attributes import CORE_ATTRIBUTES, KNOWN_EXTENSIONS
from lms_shared.events._binary import to_message
from lms_shared.events._envelope import DEFAULT_LIMITS, EnvelopeLimits
from lms_shared.events._errors import InvalidEvent
from lms_shared.events._http import decode_header, encode_header
from lms_shared.events._json import JSON_CONTENT_TYPE, from_json
from lms_shared.events._transport import Message

__all__ = ["HEADER_PREFIX", "message_from_nats", "nats_headers", "subject_for"]

HEADER_PREFIX = "ce-"
"""Every CloudEvents attribute travels as a NATS header named ``ce-<attribute>``."""

_PREFIX_LENGTH = len(HEADER_PREFIX)
_TOKEN_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_EXTRA_HEADERS = 32
_USUAL_HEADERS = {
    f"{HEADER_PREFIX}{name}": name
    for name in (*CORE_ATTRIBUTES, *KNOWN_EXTENSIONS)  # lower-case a-z0-9, all of them
}
"""``ce-<name>`` of the attributes most events carry, written as this binding writes them."""
"""Headers beyond the CloudEvents ones tolerated on a message (``Nats-*`` and the like)."""


def subject_for(prefix: str, type: str) -> str:
    """The subject an event of ``type`` is published on under ``prefix``."""
    return f"{prefix}.{'.'.join(_token(part) for part in type.split('.'))}"


def _token(part: str) -> str:
    if not part:
        return "%"
    if _TOKEN_SAFE.fullmatch(part):
        return part
    return "".join(
        char if _TOKEN_SAFE.fullmatch(char) else "".join(f"%{b:02X}" for b in char.encode())
        for char in part
    )


def nats_headers(message: Message) -> dict[str, str]:
    """The NATS headers of ``message`` in binary content mode (``ce-`` prefixed)."""
    attributes = message.attributes
    if _all_plain(attributes.values()):
        return {f"{HEADER_PREFIX}{name}": value for name, value in attributes.items()}
    return {
        f"{HEADER_PREFIX}{name}": value if _plain(value) else encode_header(value)
        for name, value in attributes.items()
    }


def _all_plain(values: Iterable[str]) -> bool:
    """Whether every value is :func:`_plain` (one check of them all joined; may say no wrongly).

    Joined by ``|``, a value that starts or ends with a space shows as
    ``"| "`` or ``" |"`` (or at either end of the whole); a ``|`` of a
    value's own next to a space only sends the values the slow way.
    """
    joined = "|".join(values)
    return (
        joined.isascii()
        and joined.isprintable()
        and "%" not in joined
        and '"' not in joined
        and "| " not in joined
        and " |" not in joined
        and joined[:1] != " "
        and joined[-1:] != " "
    )


def _plain(value: str) -> bool:
    """Whether a header value is its own encoding and decoding (nothing to escape).

    Printable ASCII without ``%`` and ``"``, no space at either end: what
    :func:`encode_header` leaves as it is and :func:`decode_header` reads
    back unchanged (checked at C speed, the common case of every header).
    """
    return (
        value.isascii()
        and value.isprintable()
        and "%" not in value
        and '"' not in value
        and value[:1] != " "
        and value[-1:] != " "
    )


def message_from_nats(
    headers: Mapping[str, str] | None, body: bytes, *, limits: EnvelopeLimits = DEFAULT_LIMITS
) -> Message:
    """The :class:`Message` a NATS message carries (binary or structured mode).

    Only what cannot be a message at all is refused here: a message that
    is one but not a valid CloudEvent (a bad ``time``, an unsupported
    ``specversion``, data that does not parse) goes on to the bus, which
    dead-letters it with the reason.

    Raises:
        InvalidEvent: too many or too large headers, a body over
            ``limits.max_bytes``, a header given twice, a malformed header
            value, a batch or non-JSON event format, or a missing required
            attribute.
    """
    if not isinstance(body, bytes):
        raise InvalidEvent("the NATS payload must be bytes")
    attributes, content_type, size = _fields(headers or {}, limits)
    size += len(body)
    if size > limits.max_bytes:
        raise InvalidEvent(f"the message is larger than {limits.max_bytes} bytes")
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media.startswith("application/cloudevents-batch"):
            raise InvalidEvent("the NATS binding carries one event per message, not a batch")
        if media.startswith("application/cloudevents"):
            if media != JSON_CONTENT_TYPE:
                raise InvalidEvent(f"event format {media!r} is not supported (only JSON)")
            return to_message(from_json(body, limits=limits))
    if len(attributes) > limits.max_attributes:
        raise InvalidEvent(f"an event carries at most {limits.max_attributes} attributes")
    if not _all_plain(attributes.values()):
        for key, value in attributes.items():
            if not _plain(value):
                attributes[key] = decode_header(value, f"{HEADER_PREFIX}{key}")
    if "specversion" not in attributes:
        raise InvalidEvent("not a CloudEvent: no ce-specversion header")
    if content_type is not None and "datacontenttype" not in attributes:
        # senders that map datacontenttype as in the HTTP binding
        attributes["datacontenttype"] = decode_header(content_type, "content-type")
    return Message(attributes, body)


def _fields(
    headers: Mapping[str, str], limits: EnvelopeLimits
) -> tuple[dict[str, str], str | None, int]:
    """The ``ce-`` headers by attribute, the ``Content-Type`` and their size, all as sent."""
    if len(headers) > limits.max_attributes + _EXTRA_HEADERS:
        raise InvalidEvent(f"more than {limits.max_attributes + _EXTRA_HEADERS} headers")
    attributes: dict[str, str] = {}
    content_type: str | None = None
    size = 0
    for raw_name, value in headers.items():
        if not isinstance(raw_name, str) or not isinstance(value, str):
            raise InvalidEvent("NATS header names and values must be strings")
        key = _USUAL_HEADERS.get(raw_name)  # as this binding writes it: nothing to normalise
        if key is not None:
            if key in attributes:
                raise InvalidEvent(f"header {raw_name!r} appears more than once")
            attributes[key] = value
            size += len(raw_name) + len(value)
            continue
        name = raw_name.strip().lower()
        if name.startswith(HEADER_PREFIX):
            key = name[_PREFIX_LENGTH:]
            if key in attributes:
                raise InvalidEvent(f"header {name!r} appears more than once")
            attributes[key] = value  # decoded in binary mode only
        elif name == "content-type":
            if content_type is not None:
                raise InvalidEvent(f"header {name!r} appears more than once")
            content_type = value
        else:
            continue
        size += len(name) + len(value)
    return attributes, content_type, size
