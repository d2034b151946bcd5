"""Typed events: pydantic models with a type and a version, and the registry that
turns them into CloudEvents and back.

::

    class CoursePublished(Event, type="lms.course.published", version=2):
        course_id: UUID
        title: str

    registry = EventRegistry([CoursePublished])

    @registry.upcaster("lms.course.published", 1)      # v1 payloads -> v2
    def _title(data: dict[str, Any]) -> dict[str, Any]:
        return {"course_id": data["course_id"], "title": data["name"]}

    cloud_event = registry.encode(CoursePublished(...), source="/courses")
    event = registry.decode(cloud_event)                # any known version -> CoursePublished

:class:`Event` is a :class:`~lms_shared.models.LmsModel` (frozen, unknown
fields refused, strings and collections bounded, no naive datetimes); its
``type``/``version`` keywords are the model's schema name and version, so
the version chain, upcasters and schema export are those of
:class:`~lms_shared.models.SchemaRegistry`, reused rather than repeated.

Consumers are tolerant readers at the top level: fields of the payload the
model does not declare are dropped before validation, so a producer may add
an optional field before its consumers upgrade. :func:`compare_event_schemas`
judges changes by exactly that rule.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

import pydantic
from pydantic_core import PydanticSerializationError

from lms_shared.clock import Clock, SystemClock
from lms_shared.events._attributes import (
    ExtensionValue,
    check_extension,
    check_string,
    check_timestamp,
    check_uri,
    check_uri_reference,
)
from lms_shared.events._envelope import (
    DEFAULT_LIMITS,
    NO_DATA,
    CloudEvent,
    EnvelopeLimits,
    is_json_content_type,
    unchecked_event,
)
from lms_shared.events._errors import (
    InvalidEvent,
    InvalidEventData,
    UnknownEventType,
    UnsupportedEventVersion,
)
from lms_shared.events._json import load_json
from lms_shared.models import LmsModel, SchemaRegistry, SchemaVersionError, compare_exports
from lms_shared.models.compat import SchemaChange

__all__ = ["Event", "EventRegistry", "Upcaster", "compare_event_schemas"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Lifts a payload of version N to version N + 1 (JSON-ready dicts)."""

_MAX_ERRORS = 20
_VARIANT = "89ab" * 4  # a random nibble's RFC 4122 variant digit: 10xx


def _new_id() -> str:
    """A random (version 4) UUID as text: ``str(uuid.uuid4())`` at less than half the cost.

    The same 16 random bytes from ``os.urandom``, then the version and
    variant bits set, without building a :class:`uuid.UUID` on the way.
    """
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"


class Event(LmsModel):
    """Base of every event: a frozen pydantic model with a type and a version.

    Class keywords:
        type: the CloudEvents ``type``, dotted lower-case (``lms.course.published``).
        version: the payload's schema version, from 1 (default 1); bump it on
            a breaking change and register an upcaster from the old version.

    A class without ``type`` is an abstract base for other events.
    """

    schema_name: ClassVar[str | None] = None
    schema_version: ClassVar[int | None] = None

    def __init_subclass__(
        cls, *, type: str | None = None, version: int | None = None, **kwargs: Any
    ) -> None:
        if version is not None and type is None:
            raise TypeError(f"{cls.__name__}: version= needs type=")
        super().__init_subclass__(schema_name=type, schema_version=version, **kwargs)

    @classmethod
    def event_type(cls) -> str:
        """The CloudEvents ``type`` of this event class.

        Raises:
            TypeError: the class is an abstract base (declared without ``type=``).
        """
        if cls.schema_name is None:
            raise TypeError(f"{cls.__name__} is an abstract event (no type=)")
        return cls.schema_name

    @classmethod
    def event_version(cls) -> int:
        """The payload schema version of this event class."""
        cls.event_type()
        return cls.schema_version or 1


class EventRegistry:
    """The event classes one service declares, by type, with their upcasters.

    Built explicitly from the classes a service publishes and consumes (no
    global registration); one class per type, at its current version.

    Args:
        events: the event classes.
        clock: stamps ``time`` on encoded events.
        limits: bounds for data that arrives as JSON bytes.

    Raises:
        ValueError: an abstract event class, or two classes for one type.
    """

    def __init__(
        self,
        events: Iterable[type[Event]] = (),
        *,
        clock: Clock | None = None,
        limits: EnvelopeLimits = DEFAULT_LIMITS,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.limits = limits
        self._schemas = SchemaRegistry()
        self._models: dict[str, type[Event]] = {}
        for event in events:
            self.register(event)

    def register(self, event: type[Event]) -> type[Event]:
        """Add an event class (returns it, so this works as a class decorator).

        Raises:
            ValueError: the class is abstract, or another class has its type.
        """
        if not (isinstance(event, type) and issubclass(event, Event)):
            raise ValueError(f"{event!r} is not an Event class")
        if event.schema_name is None:
            raise ValueError(f"{event.__name__} is an abstract event (declare it with type=)")
        existing = self._models.get(event.schema_name)
        if existing is not None and existing is not event:
            raise ValueError(
                f"event type {event.schema_name!r} is already registered as {existing.__name__}"
            )
        self._schemas.register(event)
        self._models[event.schema_name] = event
        return event

    def add_upcaster(self, type: str, from_version: int, upcaster: Upcaster) -> None:
        """Register the step that lifts ``type`` payloads from ``from_version`` to the next.

        Raises:
            KeyError: the type is not registered.
            ValueError: the step is not below the current version, or exists.
        """
        self._schemas.add_upcaster(type, from_version, upcaster)

    def upcaster(self, type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of :meth:`add_upcaster`."""
        return self._schemas.upcaster(type, from_version)

    @property
    def types(self) -> tuple[str, ...]:
        """The registered event types, sorted."""
        return tuple(sorted(self._models))

    def __contains__(self, type: object) -> bool:
        return type in self._models

    def model(self, type: str) -> type[Event]:
        """The event class of a type.

        Raises:
            UnknownEventType: the type is not registered.
        """
        try:
            return self._models[type]
        except KeyError:
            raise UnknownEventType(f"event type {type!r} is not known here", type=type) from None

    def encode(
        self,
        event: Event,
        *,
        source: str,
        id: str | None = None,
        time: datetime | None = None,
        subject: str | None = None,
        dataschema: str | None = None,
        extensions: Mapping[str, ExtensionValue] | None = None,
    ) -> CloudEvent:
        """The event as a CloudEvent, validated again (nothing invalid is ever sent).

        Args:
            event: an instance of a registered event class.
            source: the producing context, a URI-reference (``/courses``).
            id: the event id; a random UUID by default.
            time: when it happened; the clock's now by default.
            subject: what the event is about, within ``source``.
            dataschema: the URI of the payload's schema.
            extensions: extension attributes (``traceparent``, ``correlationid``,
                ``causationid``, ``tenant``, ``partitionkey``, ``deadline``, ...);
                ``schemaversion`` is set from the class.

        Raises:
            UnknownEventType: the event's class is not registered.
            InvalidEventData: the event's fields fail its model (e.g. built
                with ``model_construct``) or cannot be serialised.
            InvalidEvent: an attribute or extension is invalid.
        """
        _, event_type, version, data = self._data(event)
        checked_id = check_string("id", id) if id else _new_id()
        shared = _Shared(source, subject, dataschema, extensions)
        return unchecked_event(
            id=checked_id,
            source=shared.source,
            type=event_type,
            datacontenttype="application/json",
            dataschema=shared.dataschema,
            subject=shared.subject,
            time=check_timestamp("time", time or self.clock.now()),
            extensions=shared.extensions(version),
            data=data,
        )

    def encode_all(
        self,
        events: Iterable[Event],
        *,
        source: str,
        subject: str | None = None,
        dataschema: str | None = None,
        extensions: Mapping[str, ExtensionValue] | None = None,
    ) -> list[CloudEvent]:
        """Many events as CloudEvents that share their attributes, each validated again.

        What :meth:`encode` does for each (a random UUID ``id``, the clock's
        ``time``), with the shared attributes checked once: the first event
        that fails raises, and then none is returned.

        Raises:
            UnknownEventType, InvalidEventData, InvalidEvent: as :meth:`encode`.
        """
        shared: _Shared | None = None
        out: list[CloudEvent] = []
        for event in events:
            _, event_type, version, data = self._data(event)
            if shared is None:  # after the first event's own checks, as encode orders them
                shared = _Shared(source, subject, dataschema, extensions)
            out.append(
                unchecked_event(
                    id=_new_id(),
                    source=shared.source,
                    type=event_type,
                    datacontenttype="application/json",
                    dataschema=shared.dataschema,
                    subject=shared.subject,
                    time=check_timestamp("time", self.clock.now()),
                    extensions=shared.extensions(version),
                    data=data,
                )
            )
        return out

    def _data(self, event: Event) -> tuple[type[Event], str, int, dict[str, Any]]:
        """The class, type, version and JSON data of a registered event, validated again.

        The type is a registered class's ``schema_name``, a valid CloudEvents
        ``type`` by the model's own rule (dotted lower-case words).
        """
        cls = type(event)
        event_type = cls.schema_name or cls.__name__
        if self._models.get(event_type) is not cls:
            raise UnknownEventType(
                f"{cls.__name__} is not registered for {event_type!r}", type=event_type
            )
        version = cls.event_version()
        try:
            data = event.model_dump(mode="json", by_alias=True, warnings="error")
        except PydanticSerializationError as exc:
            raise InvalidEventData(
                f"{event_type} v{version} cannot be serialised: {exc}",
                type=event_type,
                version=version,
            ) from None
        self._validate(cls, data, version)
        return cls, event_type, version, data

    def decode(self, cloud_event: CloudEvent) -> Event:
        """The typed event a CloudEvent carries, lifted to the current version.

        The version is the ``schemaversion`` extension (1 when absent).

        Raises:
            UnknownEventType: no class is registered for the type.
            UnsupportedEventVersion: the version is newer than this service
                knows, or an upcaster step is missing.
            InvalidEventData: the data is not a JSON object, an upcaster
                failed, or the payload fails the model.
        """
        model = self.model(cloud_event.type)
        version = cloud_event.schemaversion or 1
        payload = self._payload(cloud_event, version)
        if version == model.event_version():  # nothing to lift: no copy, no upcaster
            current: Any = payload
        else:
            try:
                current = self._schemas.upcast(cloud_event.type, version, payload)
            except SchemaVersionError as exc:
                raise UnsupportedEventVersion(
                    str(exc), type=cloud_event.type, version=version
                ) from None
            except Exception as exc:  # an upcaster is user code: any failure is bad data
                raise InvalidEventData(
                    f"{cloud_event.type} v{version}: upcaster failed ({type(exc).__name__}: {exc})",
                    type=cloud_event.type,
                    version=version,
                ) from None
            if not isinstance(current, dict):
                raise InvalidEventData(
                    f"{cloud_event.type} v{version}: an upcaster returned {type(current).__name__}",
                    type=cloud_event.type,
                    version=version,
                )
        known = _field_keys(model)
        if known.issuperset(current):
            return self._validate(model, current, version)
        return self._validate(model, {k: v for k, v in current.items() if k in known}, version)

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """The JSON Schema of every event type by type (``x-schema-name``/``-version``)."""
        return self._schemas.json_schemas()

    def _payload(self, cloud_event: CloudEvent, version: int) -> dict[str, Any]:
        data = cloud_event.data
        where = f"{cloud_event.type} v{version}"
        if not is_json_content_type(cloud_event.datacontenttype):
            raise InvalidEventData(
                f"{where}: data must be JSON, not {cloud_event.datacontenttype}",
                type=cloud_event.type,
                version=version,
            )
        if isinstance(data, bytes):
            try:
                data = load_json(
                    data, max_bytes=self.limits.max_bytes, max_depth=self.limits.max_depth
                )
            except InvalidEvent as exc:
                raise InvalidEventData(
                    f"{where}: {exc.reason}", type=cloud_event.type, version=version
                ) from None
        if data is NO_DATA or not isinstance(data, dict):
            raise InvalidEventData(
                f"{where}: data must be a JSON object", type=cloud_event.type, version=version
            )
        return data

    def _validate(self, model: type[Event], data: dict[str, Any], version: int) -> Event:
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)[:_MAX_ERRORS]
            ]
            summary = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in errors[:5]
            )
            event_type = model.event_type()
            raise InvalidEventData(
                f"{event_type} v{version} data failed validation: {summary}",
                type=event_type,
                version=version,
                errors=errors,
            ) from None


@functools.cache
def _field_keys(model: type[Event]) -> frozenset[str]:
    """The top-level keys ``model`` reads (names and aliases), remembered per class."""
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        if field.alias:
            keys.add(field.alias)
        if isinstance(field.validation_alias, str):
            keys.add(field.validation_alias)
    return frozenset(keys)


class _Shared:
    """The attributes the events of one encode share, checked once.

    Raises:
        InvalidEvent: ``schemaversion`` among the extensions, or an invalid
            source, subject, data schema or extension.
    """

    __slots__ = ("_extensions", "_versions", "dataschema", "source", "subject")

    def __init__(
        self,
        source: str,
        subject: str | None,
        dataschema: str | None,
        extensions: Mapping[str, ExtensionValue] | None,
    ) -> None:
        extra = dict(extensions or {})
        if "schemaversion" in extra:
            raise InvalidEvent("schemaversion is set from the event class, not by the caller")
        # in the order the CloudEvent constructor checks them
        self.source = check_uri_reference("source", source)
        self.dataschema = None if dataschema is None else check_uri("dataschema", dataschema)
        self.subject = None if subject is None else check_string("subject", subject)
        self._extensions = {name: check_extension(name, v) for name, v in extra.items()}
        self._versions: dict[int, Mapping[str, ExtensionValue]] = {}

    def extensions(self, version: int) -> Mapping[str, ExtensionValue]:
        """The checked extensions with ``schemaversion``: one read-only mapping per version."""
        found = self._versions.get(version)
        if found is None:
            checked = check_extension("schemaversion", version)
            found = MappingProxyType({**self._extensions, "schemaversion": checked})
            self._versions[version] = found
        return found


def compare_event_schemas(
    old: Mapping[str, dict[str, Any]], new: Mapping[str, dict[str, Any]]
) -> list[SchemaChange]:
    """What breaks between two event schema exports (:meth:`EventRegistry.json_schemas`).

    The DTO checker (:func:`lms_shared.models.compare_exports`) judges each
    direction; consumers drop unknown top-level fields (tolerant readers),
    so for the forward direction the old schema's root is treated as open.
    Adding an optional field is compatible; removing a field, changing its
    type, adding a required field or making one required is not. Changes
    under a bumped ``x-schema-version`` are reported with ``allowed=True``.
    """
    strict = compare_exports(dict(old), dict(new))
    tolerant = compare_exports({name: _open_root(s) for name, s in old.items()}, dict(new))
    return [c for c in strict if c.direction == "backward"] + [
        c for c in tolerant if c.direction == "forward"
    ]


def _open_root(schema: dict[str, Any]) -> dict[str, Any]:
    opened = dict(schema)
    opened.pop("additionalProperties", None)
    return opened
