"""The CloudEvent value: context attributes, extensions and data, validated on creation.

A :class:`CloudEvent` is frozen and always valid: its constructor checks
every attribute against the CloudEvents 1.0 type system, so every writer
(JSON, batches, HTTP, transport messages) produces a valid event and every
reader goes through the same checks. ``data`` is ``bytes`` (Binary, written
as ``data_base64``), any JSON value (when ``datacontenttype`` is JSON or
absent), a ``str`` (other content types), or :data:`NO_DATA` (absent, as
distinct from a JSON ``null`` payload).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from lms_shared.events._attributes import (
    ExtensionValue,
    canonical,
    check_extension,
    check_media_type,
    check_string,
    check_timestamp,
    check_uri,
    check_uri_reference,
    format_timestamp,
)
from lms_shared.events._errors import InvalidEvent

__all__ = [
    "DEFAULT_LIMITS",
    "NO_DATA",
    "SPECVERSION",
    "CloudEvent",
    "Data",
    "EnvelopeLimits",
    "NoData",
    "is_json_content_type",
    "unchecked_event",
]

SPECVERSION = "1.0"


class NoData(enum.Enum):
    """The type of :data:`NO_DATA`."""

    NO_DATA = "NO_DATA"

    def __repr__(self) -> str:
        return "NO_DATA"


NO_DATA = NoData.NO_DATA
"""The event has no ``data`` member (a JSON ``null`` payload is ``None``)."""

Data = bytes | str | int | float | bool | None | list[Any] | dict[str, Any] | NoData
"""What ``CloudEvent.data`` holds: bytes, a JSON value, a string, or :data:`NO_DATA`."""

_JSON_MEDIA = re.compile(r"[^/;\s]+/(?:json|[^/;\s]*\+json)", re.IGNORECASE)


def is_json_content_type(content_type: str | None) -> bool:
    """Whether a ``datacontenttype`` declares JSON data (``*/json``, ``*/*+json``, or absent)."""
    if content_type is None:
        return True
    return _is_json_media(content_type)


@functools.lru_cache(maxsize=256)
def _is_json_media(content_type: str) -> bool:
    # remembered: a handful of content types come with every event
    return _JSON_MEDIA.fullmatch(content_type.split(";", 1)[0].strip()) is not None


@dataclass(frozen=True, slots=True)
class EnvelopeLimits:
    """Bounds every parser of untrusted envelopes enforces before and while parsing.

    Attributes:
        max_bytes: the largest single event (JSON document, HTTP headers and
            body, or message attributes and data).
        max_depth: the deepest JSON nesting (the envelope object is level 1).
        max_attributes: the most context attributes, extensions included.
        max_batch_bytes: the largest batch document.
        max_batch_events: the most events in one batch.
    """

    max_bytes: int = 1024 * 1024
    max_depth: int = 64
    max_attributes: int = 64
    max_batch_bytes: int = 16 * 1024 * 1024
    max_batch_events: int = 1000

    def __post_init__(self) -> None:
        for name in (
            "max_bytes",
            "max_depth",
            "max_attributes",
            "max_batch_bytes",
            "max_batch_events",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_depth > 1000:
            raise ValueError("max_depth must be at most 1000 (the JSON parser stops at 1024)")


DEFAULT_LIMITS = EnvelopeLimits()


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """One CloudEvents 1.0 event.

    Attributes:
        id: unique per ``source`` (consumers deduplicate on ``source`` + ``id``).
        source: a URI-reference naming the context the event happened in.
        type: the event type, reverse-DNS prefixed (``lms.course.published``).
        specversion: always ``"1.0"``.
        datacontenttype: the RFC 2046 media type of ``data``.
        dataschema: an absolute URI of the schema ``data`` adheres to.
        subject: what the event is about, within ``source``.
        time: when the occurrence happened (timezone-aware).
        extensions: extension attributes by name (read-only copy); the known
            ones are typed (``schemaversion`` an int, ``deadline`` a datetime).
        data: the payload (see :data:`Data`).

    Raises:
        InvalidEvent: any attribute breaks the CloudEvents 1.0 rules.
    """

    id: str
    source: str
    type: str
    specversion: str = SPECVERSION
    datacontenttype: str | None = None
    dataschema: str | None = None
    subject: str | None = None
    time: datetime | None = None
    extensions: Mapping[str, ExtensionValue] = field(default_factory=dict)
    data: Data = NO_DATA

    def __post_init__(self) -> None:
        check_string("id", self.id)
        check_uri_reference("source", self.source)
        check_string("type", self.type)
        if self.specversion != SPECVERSION:
            raise InvalidEvent(f"specversion {self.specversion!r} is not supported (only 1.0)")
        if self.datacontenttype is not None:
            check_media_type("datacontenttype", self.datacontenttype)
        if self.dataschema is not None:
            check_uri("dataschema", self.dataschema)
        if self.subject is not None:
            check_string("subject", self.subject)
        if self.time is not None:
            check_timestamp("time", self.time)
        if not isinstance(self.extensions, Mapping):
            raise InvalidEvent("extensions must be a mapping")
        extensions = {name: check_extension(name, v) for name, v in self.extensions.items()}
        object.__setattr__(self, "extensions", MappingProxyType(extensions))
        data = self.data
        if not (
            data is NO_DATA
            or isinstance(data, bytes | str)
            or is_json_content_type(self.datacontenttype)
        ):
            raise InvalidEvent(
                f"data for {self.datacontenttype!r} must be bytes or str (only JSON "
                "content types carry structured data)"
            )

    def attributes(self) -> dict[str, str]:
        """Every context attribute, extensions included, in canonical string form."""
        out = {
            "id": self.id,
            "source": self.source,
            "specversion": self.specversion,
            "type": self.type,
        }
        if self.datacontenttype is not None:
            out["datacontenttype"] = self.datacontenttype
        if self.dataschema is not None:
            out["dataschema"] = self.dataschema
        if self.subject is not None:
            out["subject"] = self.subject
        if self.time is not None:
            out["time"] = format_timestamp(self.time)
        for name, value in self.extensions.items():
            out[name] = canonical(value)
        return out

    @property
    def has_data(self) -> bool:
        """Whether the event carries ``data`` (a JSON ``null`` payload counts)."""
        return self.data is not NO_DATA

    @property
    def traceparent(self) -> str | None:
        """The W3C ``traceparent`` of the operation that produced the event."""
        return self._text("traceparent")

    @property
    def tracestate(self) -> str | None:
        """The W3C ``tracestate`` that travels with ``traceparent``."""
        return self._text("tracestate")

    @property
    def correlationid(self) -> str | None:
        """The id shared by every event of one business operation."""
        return self._text("correlationid")

    @property
    def causationid(self) -> str | None:
        """The ``id`` of the event (or request) that caused this one."""
        return self._text("causationid")

    @property
    def tenant(self) -> str | None:
        """The tenant the event belongs to."""
        return self._text("tenant")

    @property
    def partitionkey(self) -> str | None:
        """The partitioning extension's key: events with one key stay in order."""
        return self._text("partitionkey")

    @property
    def schemaversion(self) -> int | None:
        """The version of the ``data`` schema for this ``type``."""
        value = self.extensions.get("schemaversion")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def deadline(self) -> datetime | None:
        """When handling the event stops being useful."""
        value = self.extensions.get("deadline")
        return value if isinstance(value, datetime) else None

    def _text(self, name: str) -> str | None:
        value = self.extensions.get(name)
        return value if isinstance(value, str) else None


def unchecked_event(
    *,
    id: str,
    source: str,
    type: str,
    datacontenttype: str | None,
    dataschema: str | None,
    subject: str | None,
    time: datetime | None,
    extensions: Mapping[str, ExtensionValue],
    data: Data,
) -> CloudEvent:
    """A :class:`CloudEvent` of values already checked, built without checking them again.

    For this package's readers and writers only: every value must have
    passed the very checks the constructor makes (a reader of untrusted
    input checks each once, then builds the event here; the registry checks
    a batch's shared attributes once and makes ``id`` and ``time`` itself).
    ``extensions`` is kept as given: pass a read-only mapping (a
    ``MappingProxyType``) that nothing else changes.
    """
    event = _new(CloudEvent)
    _set_id(event, id)
    _set_source(event, source)
    _set_type(event, type)
    _set_specversion(event, SPECVERSION)
    _set_datacontenttype(event, datacontenttype)
    _set_dataschema(event, dataschema)
    _set_subject(event, subject)
    _set_time(event, time)
    _set_extensions(event, extensions)
    _set_data(event, data)
    return event


# the slots' own setters: what a frozen dataclass's __init__ reaches through object.__setattr__
_new = object.__new__
(
    _set_id,
    _set_source,
    _set_type,
    _set_specversion,
    _set_datacontenttype,
    _set_dataschema,
    _set_subject,
    _set_time,
    _set_extensions,
    _set_data,
) = (
    getattr(CloudEvent, name).__set__
    for name in (
        "id",
        "source",
        "type",
        "specversion",
        "datacontenttype",
        "dataschema",
        "subject",
        "time",
        "extensions",
        "data",
    )
)
