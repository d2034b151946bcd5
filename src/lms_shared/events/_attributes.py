"""The CloudEvents 1.0 type system: attribute names, value types, canonical strings.

Every attribute value is one of Boolean, Integer (32-bit), String, Binary,
URI, URI-reference or Timestamp, each with a canonical string form (the
form binary mode carries in headers and :class:`Message` attributes).
Attribute names are lower-case ``a-z0-9`` (a MUST); at most 20 characters
is only a SHOULD, so longer names are accepted. ``data`` is reserved.

Written by hand, and why: no URI or RFC 3339 validator is among the
package's dependencies, and both grammars are short. The URI regexes
transcribe RFC 3986 appendix A (IP literals are checked for their
character set only); the timestamp regex is RFC 3339 section 5.6
(``T``/``Z`` in either case). Python's ``datetime.fromisoformat`` is not
used because it accepts ISO 8601 forms RFC 3339 refuses (no offset, date
only, week dates). Known limits: leap seconds (``:60``) cannot be
represented by ``datetime`` and are refused; digits beyond microseconds
are truncated.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Collection, Hashable
from datetime import UTC, datetime, timedelta, timezone

from lms_shared.events._errors import InvalidEvent

__all__ = [
    "CORE_ATTRIBUTES",
    "KNOWN_EXTENSIONS",
    "ExtensionValue",
    "check_name",
    "format_timestamp",
    "parse_timestamp",
]

ExtensionValue = bool | int | str | bytes | datetime
"""A native extension value: Boolean, Integer, String (also URI and
URI-reference), Binary or Timestamp."""

CORE_ATTRIBUTES = frozenset(
    {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"}
)
RESERVED_NAMES = frozenset({"data"})
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

_NAME = re.compile(r"[a-z0-9]+")
_NONCHARACTERS = "".join(f"\\U{plane:04X}FFFE\\U{plane:04X}FFFF" for plane in range(17))
_BAD_CHARS = re.compile(f"[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef\ud800-\udfff{_NONCHARACTERS}]")
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_SMALL_INTEGERS = {str(number): number for number in range(100)}
"""The canonical strings of 0 to 99 and their values."""
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(
    rf"{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*{_TCHARS}=(?:{_TCHARS}|\"(?:[^\"\\\x00-\x1f]|\\.)*\"))*"
)

# RFC 3986 appendix A
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_HOST = rf"(?:\[[0-9A-Za-z{_SUB_DELIMS}:._~\-]+\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*)"
_AUTHORITY = rf"(?:{_USERINFO}@)?{_HOST}(?::[0-9]*)?"
_ABEMPTY = rf"(?:/{_PCHAR}*)*"
_ABSOLUTE = rf"/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?"
_ROOTLESS = rf"{_PCHAR}+(?:/{_PCHAR}*)*"
_NOSCHEME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}@]|{_PCT})+(?:/{_PCHAR}*)*"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_HIER = rf"(?://{_AUTHORITY}{_ABEMPTY}|{_ABSOLUTE}|{_ROOTLESS}|)"
_RELATIVE = rf"(?://{_AUTHORITY}{_ABEMPTY}|{_ABSOLUTE}|{_NOSCHEME}|)"
_ABSOLUTE_URI = re.compile(rf"{_SCHEME}:{_HIER}(?:\?{_QUERY})?")
_URI_REFERENCE = re.compile(rf"(?:{_SCHEME}:{_HIER}|{_RELATIVE})(?:\?{_QUERY})?(?:#{_QUERY})?")


def _remembered(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    """``pattern.fullmatch(text)`` as a test remembered per text (1024 of them, LRU).

    Sources, data schemas and media types repeat on every event.
    """

    @functools.lru_cache(maxsize=1024)
    def matches(text: str) -> bool:
        return pattern.fullmatch(text) is not None

    return matches


_is_absolute_uri = _remembered(_ABSOLUTE_URI)
_is_uri_reference = _remembered(_URI_REFERENCE)
_is_media_type = _remembered(_MEDIA_TYPE)


def check_name(name: object) -> str:
    """``name`` if it is a valid context attribute name.

    Raises:
        InvalidEvent: not lower-case ASCII letters and digits, or ``data``.
    """
    if not isinstance(name, str):
        raise InvalidEvent(f"attribute name {name!r} must be lower-case letters a-z and digits")
    if name in _COMMON_NAMES:  # the usual names, valid by construction: a set look-up
        return name
    if not _NAME.fullmatch(name):
        raise InvalidEvent(f"attribute name {name!r} must be lower-case letters a-z and digits")
    if name in RESERVED_NAMES:
        raise InvalidEvent(f"attribute name {name!r} is reserved")
    return name


def check_names(names: Collection[Hashable]) -> None:
    """:func:`check_name` of each name, e.g. a mapping's keys (the usual ones in one set look-up).

    Raises:
        InvalidEvent: a name is not lower-case ASCII letters and digits, or ``data``.
    """
    if not _COMMON_NAMES.issuperset(names):
        for name in names:
            check_name(name)


def check_string(name: str, value: object, *, empty: bool = False) -> str:
    """``value`` if it is a CloudEvents String (no control characters, noncharacters
    or lone surrogates), non-empty unless ``empty``."""
    if not isinstance(value, str):
        raise InvalidEvent(f"attribute {name!r} must be a string")
    if not value and not empty:
        raise InvalidEvent(f"attribute {name!r} must not be empty")
    # printable ASCII, the usual case, holds none of them (C-speed, no regex scan)
    if value.isascii() and value.isprintable():
        return value
    bad = _BAD_CHARS.search(value)
    if bad:
        raise InvalidEvent(
            f"attribute {name!r} contains the disallowed character U+{ord(bad[0]):04X}"
        )
    return value


def check_uri(name: str, value: object) -> str:
    """``value`` if it is a non-empty absolute URI (RFC 3986 section 4.3)."""
    text = check_string(name, value)
    if not _is_absolute_uri(text):
        raise InvalidEvent(f"attribute {name!r} must be an absolute URI")
    return text


def check_uri_reference(name: str, value: object) -> str:
    """``value`` if it is a non-empty URI-reference (RFC 3986 section 4.1)."""
    text = check_string(name, value)
    if not _is_uri_reference(text):
        raise InvalidEvent(f"attribute {name!r} must be a URI-reference")
    return text


def check_media_type(name: str, value: object) -> str:
    """``value`` if it is an RFC 2046 media type (``type/subtype; param=value``)."""
    text = check_string(name, value)
    if not _is_media_type(text):
        raise InvalidEvent(f"attribute {name!r} must be a media type such as application/json")
    return text


def check_integer(name: str, value: object) -> int:
    """``value`` if it is an Integer in the signed 32-bit range (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"attribute {name!r} must be an integer")
    if not INT_MIN <= value <= INT_MAX:
        raise InvalidEvent(f"attribute {name!r} is outside the 32-bit integer range")
    return value


def check_timestamp(name: str, value: object) -> datetime:
    """``value`` if it is a timezone-aware datetime."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidEvent(f"attribute {name!r} must be a timezone-aware datetime")
    return value


def parse_timestamp(text: str, name: str = "time") -> datetime:
    """An RFC 3339 ``date-time`` as an aware datetime.

    Raises:
        InvalidEvent: not RFC 3339, an impossible date, or a leap second.
    """
    match = _TIMESTAMP.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidEvent(f"attribute {name!r} must be an RFC 3339 timestamp")
    fraction = match.group(7)
    if text[10] == "T" and text[-1] == "Z" and (fraction is None or len(fraction) <= 6):
        # the canonical form (what format_timestamp writes), matched above: the C parser
        # reads it exactly as the fields below would be read
        if match.group(6) == "60":
            raise InvalidEvent(f"attribute {name!r}: leap seconds are not supported")
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise InvalidEvent(f"attribute {name!r} is not a valid date and time") from None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zulu, sign, off_hours, off_minutes = match.groups()[6:]
    if second == 60:
        raise InvalidEvent(f"attribute {name!r}: leap seconds are not supported")
    tz = UTC
    if not zulu:
        hours, minutes = int(off_hours), int(off_minutes)
        if hours > 23 or minutes > 59:
            raise InvalidEvent(f"attribute {name!r} has an invalid UTC offset")
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if sign == "-" else offset)
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except ValueError:
        raise InvalidEvent(f"attribute {name!r} is not a valid date and time") from None


def format_timestamp(value: datetime) -> str:
    """The canonical RFC 3339 form: UTC, ``Z``, microseconds only when non-zero."""
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.isoformat(timespec=spec)[:-6] + "Z"  # without its "+00:00"


def parse_integer(text: str, name: str) -> int:
    """An Integer from its canonical string (``-?(0|[1-9][0-9]*)``, 32-bit)."""
    small = _SMALL_INTEGERS.get(text) if isinstance(text, str) else None
    if small is not None:  # schema versions and the like: a look-up
        return small
    if not isinstance(text, str) or not _INTEGER.fullmatch(text):
        raise InvalidEvent(f"attribute {name!r} must be an integer")
    return check_integer(name, int(text))


def parse_boolean(text: str, name: str) -> bool:
    """A Boolean from its canonical string: exactly ``true`` or ``false``."""
    if text not in ("true", "false"):
        raise InvalidEvent(f"attribute {name!r} must be true or false")
    return text == "true"


def parse_binary(text: str, name: str) -> bytes:
    """Binary from its canonical string: RFC 4648 base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidEvent(f"attribute {name!r} must be base64") from None


def canonical(value: ExtensionValue) -> str:
    """The canonical string form of a native attribute value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return format_timestamp(value)
    return value


_TRACEPARENT = re.compile(
    r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}"
)
_TRACESTATE = re.compile(r"[\x20-\x7e]{0,512}")


def _traceparent(name: str, value: object) -> str:
    text = check_string(name, value)
    # W3C Trace Context level 1: version 00 is exactly 55 characters; later
    # versions may append fields after another dash
    if not _TRACEPARENT.match(text) or (text[:2] == "00" and len(text) != 55):
        raise InvalidEvent(f"attribute {name!r} is not a W3C traceparent")
    if len(text) > 55 and text[55] != "-":
        raise InvalidEvent(f"attribute {name!r} is not a W3C traceparent")
    return text


def _tracestate(name: str, value: object) -> str:
    text = check_string(name, value, empty=True)
    if not _TRACESTATE.fullmatch(text):
        raise InvalidEvent(f"attribute {name!r} is not a W3C tracestate (at most 512 characters)")
    return text


def _positive(name: str, value: object) -> int:
    number = check_integer(name, value)
    if number < 1:
        raise InvalidEvent(f"attribute {name!r} must be at least 1")
    return number


class _Known:
    """A known extension: how to check its native value, how to read its string."""

    def __init__(
        self,
        kind: str,
        check: Callable[[str, object], ExtensionValue],
        parse: Callable[[str, str], ExtensionValue],
    ) -> None:
        self.kind = kind
        self.check = check
        self.parse = parse

    def from_string(self, name: str, text: str) -> ExtensionValue:
        return self.check(name, self.parse(text, name))


def _as_is(text: str, name: str) -> str:
    return text


KNOWN_EXTENSIONS: dict[str, _Known] = {
    # distributed tracing extension (W3C Trace Context)
    "traceparent": _Known("String", _traceparent, _as_is),
    "tracestate": _Known("String", _tracestate, _as_is),
    # partitioning extension
    "partitionkey": _Known("String", check_string, _as_is),
    # the platform's own
    "correlationid": _Known("String", check_string, _as_is),
    "causationid": _Known("String", check_string, _as_is),
    "tenant": _Known("String", check_string, _as_is),
    "schemaversion": _Known("Integer", _positive, parse_integer),
    "deadline": _Known("Timestamp", check_timestamp, parse_timestamp),
}
"""The extensions this package gives a type: checked natively, parsed from strings."""

_COMMON_NAMES = frozenset(CORE_ATTRIBUTES | KNOWN_EXTENSIONS.keys())
"""Attribute names every event carries, all lower-case ``a-z0-9`` and none reserved."""


def check_extension(name: str, value: object) -> ExtensionValue:
    """A native extension value, checked against its known type or the type system."""
    check_name(name)
    if name in CORE_ATTRIBUTES:
        raise InvalidEvent(f"{name!r} is a core attribute, not an extension")
    known = KNOWN_EXTENSIONS.get(name)
    if known is not None:
        if isinstance(value, str) and known.kind != "String":
            return known.from_string(name, value)
        return known.check(name, value)
    if isinstance(value, bool | bytes):
        return value
    if isinstance(value, int):
        return check_integer(name, value)
    if isinstance(value, datetime):
        return check_timestamp(name, value)
    if isinstance(value, str):
        return check_string(name, value, empty=True)
    raise InvalidEvent(f"extension {name!r} must be a boolean, integer, string, bytes or datetime")


def extension_from_string(name: str, text: str) -> ExtensionValue:
    """An extension from its canonical string (binary mode): typed if known, else a String."""
    known = KNOWN_EXTENSIONS.get(name)
    if known is not None:
        if known.kind == "String":  # its check begins with check_string's, same messages
            return known.check(name, text)
        return known.from_string(name, check_string(name, text, empty=True))
    return check_extension(name, text)
