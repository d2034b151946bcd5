"""The CloudEvents HTTP binding: structured, binary and batched content modes.

Pure functions over headers and body bytes, so a webhook route (or any
HTTP client) can use them without this package knowing the framework:

* :func:`from_http` reads one event: ``Content-Type:
  application/cloudevents+json`` is structured mode, anything else is
  binary mode (``ce-*`` headers, ``Content-Type`` as ``datacontenttype``).
* :func:`from_http_batch` reads ``application/cloudevents-batch+json``.
* :func:`to_http` / :func:`to_http_batch` write them.

Header values are percent-encoded as the binding asks: space, ``"``,
``%`` and everything outside printable ASCII, as UTF-8 bytes, upper-case
hex. Reading first unescapes an RFC 7230 quoted string (older senders),
then percent-decodes once and refuses invalid UTF-8 (overlong forms too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote, unquote_to_bytes

from lms_shared.events._binary import from_binary, to_binary
from lms_shared.events._envelope import DEFAULT_LIMITS, CloudEvent, EnvelopeLimits
from lms_shared.events._errors import InvalidEvent
from lms_shared.events._json import (
    BATCH_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    from_json,
    from_json_batch,
    to_json,
    to_json_batch,
)

__all__ = [
    "Headers",
    "decode_header",
    "encode_header",
    "from_http",
    "from_http_batch",
    "to_http",
    "to_http_batch",
]

Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]
"""Request headers: a mapping, or ``(name, value)`` pairs (ASGI's raw bytes too)."""

_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PRINTABLE = re.compile(r"[\x20-\x7e\t]*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")
_MAX_HEADERS = 256


def encode_header(value: str) -> str:
    """A canonical attribute string as an HTTP header value (percent-encoded)."""
    return quote(value, safe=_SAFE, encoding="utf-8")


def decode_header(value: str, name: str = "header") -> str:
    """An HTTP header value back to the attribute string.

    Raises:
        InvalidEvent: not printable ASCII, a broken quoted string or percent
            escape, or bytes that are not UTF-8.
    """
    value = value.strip(" \t")
    if not _PRINTABLE.fullmatch(value):
        raise InvalidEvent(f"header {name!r} is not printable ASCII")
    if value.startswith('"'):
        quoted = _QUOTED.fullmatch(value)
        if quoted is None:
            raise InvalidEvent(f"header {name!r} has a malformed quoted string")
        value = _QUOTED_PAIR.sub(r"\1", quoted[1])
    if _BAD_ESCAPE.search(value):
        raise InvalidEvent(f"header {name!r} has a malformed percent escape")
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent(f"header {name!r} is not UTF-8 once percent-decoded") from None


def from_http(
    headers: Headers, body: bytes, *, limits: EnvelopeLimits = DEFAULT_LIMITS
) -> CloudEvent:
    """Read one event from an HTTP message (structured or binary mode).

    Raises:
        InvalidEvent: not a CloudEvent, another event format, a batch, a
            duplicated or malformed header, too large, or invalid.
    """
    fields = _fields(headers)
    content_type = fields.get("content-type")
    media = _media(content_type)
    if media.startswith("application/cloudevents-batch"):
        raise InvalidEvent("the body is a batch of events, not one event")
    if media.startswith("application/cloudevents"):
        if media != JSON_CONTENT_TYPE:
            raise InvalidEvent(f"event format {media!r} is not supported (only JSON)")
        _check_charset(content_type)
        return from_json(body, limits=limits)
    if "ce-datacontenttype" in fields:
        raise InvalidEvent("binary mode carries datacontenttype as Content-Type, not a ce- header")
    attributes = {
        name[3:]: decode_header(value, name)
        for name, value in fields.items()
        if name.startswith("ce-")
    }
    if "specversion" not in attributes:
        raise InvalidEvent("not a CloudEvent: no ce-specversion header or CloudEvents content type")
    if content_type is not None:
        attributes["datacontenttype"] = content_type.strip()
    return from_binary(attributes, body, limits=limits)


def from_http_batch(
    headers: Headers, body: bytes, *, limits: EnvelopeLimits = DEFAULT_LIMITS
) -> list[CloudEvent]:
    """Read a batch of events (``application/cloudevents-batch+json``).

    Raises:
        InvalidEvent: another content type, or an invalid batch.
    """
    content_type = _fields(headers).get("content-type")
    if _media(content_type) != BATCH_CONTENT_TYPE:
        raise InvalidEvent(f"a batch needs Content-Type {BATCH_CONTENT_TYPE}")
    _check_charset(content_type)
    return from_json_batch(body, limits=limits)


def to_http(event: CloudEvent, *, structured: bool = False) -> tuple[dict[str, str], bytes]:
    """The headers and body of an HTTP message carrying the event.

    Args:
        event: the event.
        structured: write the JSON format as the body; binary mode otherwise.

    Raises:
        InvalidEvent: the data cannot be written.
    """
    if structured:
        return {"content-type": f"{JSON_CONTENT_TYPE}; charset=utf-8"}, to_json(event)
    attributes, body = to_binary(event)
    headers = {}
    content_type = attributes.pop("datacontenttype", None)
    if content_type is not None:
        headers["content-type"] = content_type
    headers.update({f"ce-{name}": encode_header(value) for name, value in attributes.items()})
    return headers, body


def to_http_batch(events: Sequence[CloudEvent]) -> tuple[dict[str, str], bytes]:
    """The headers and body of an HTTP message carrying a JSON batch."""
    return {"content-type": f"{BATCH_CONTENT_TYPE}; charset=utf-8"}, to_json_batch(events)


def _fields(headers: Headers) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    fields: dict[str, str] = {}
    for count, (raw_name, raw_value) in enumerate(pairs, 1):
        if count > _MAX_HEADERS:
            raise InvalidEvent(f"more than {_MAX_HEADERS} headers")
        name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
        value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
        name = name.lower()
        if name.startswith("ce-") or name == "content-type":
            if name in fields:
                raise InvalidEvent(f"header {name!r} appears more than once")
            fields[name] = value
    return fields


def _media(content_type: str | None) -> str:
    return "" if content_type is None else content_type.split(";", 1)[0].strip().lower()


def _check_charset(content_type: str | None) -> None:
    for parameter in (content_type or "").split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise InvalidEvent(f"charset {value.strip()!r} is not supported (only UTF-8)")
