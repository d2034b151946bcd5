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

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import pydantic
from pydantic_core import PydanticSerializationError

from lms_shared.clock import Clock, SystemClock
from lms_shared.events._attributes import ExtensionValue
from lms_shared.events._envelope import (
    DEFAULT_LIMITS,
    NO_DATA,
    CloudEvent,
    EnvelopeLimits,
    is_json_content_type,
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
        extra = dict(extensions or {})
        if "schemaversion" in extra:
            raise InvalidEvent("schemaversion is set from the event class, not by the caller")
        return CloudEvent(
            id=id or str(uuid.uuid4()),
            source=source,
            type=event_type,
            datacontenttype="application/json",
            dataschema=dataschema,
            subject=subject,
            time=time or self.clock.now(),
            extensions={**extra, "schemaversion": version},
            data=data,
        )

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


def _field_keys(model: type[Event]) -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        if field.alias:
            keys.add(field.alias)
        if isinstance(field.validation_alias, str):
            keys.add(field.validation_alias)
    return keys


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
