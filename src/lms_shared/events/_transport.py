"""The transport protocol: what a broker must do for the bus, binding-neutral.

A transport moves :class:`Message` values: the CloudEvents context
attributes as canonical strings plus the data bytes (the CloudEvents
*binary mode*, which every broker binding uses). It knows nothing of event
models, retries policies or dead letters: the bus builds those on top of
four guarantees every transport gives (and ``tests/events/conformance``
checks against the real broker):

* **Confirmed publish.** :meth:`Transport.publish` returns only after the
  broker stored every message; otherwise it raises :class:`PublishFailed`.
* **Groups.** Subscriptions that share a ``group`` compete (each event goes
  to one of them); every group gets every event of its types (fan-out). A
  group starts at the end of the stream: events published before its first
  subscription are delivered only through :meth:`Transport.rewind`. When
  :meth:`Transport.subscribe` returns, every event published afterwards
  reaches the group.
* **At least once.** A delivery is settled by :meth:`Delivery.ack` or
  :meth:`Delivery.retry`; one that is not settled within ``ack_wait``
  (crashed consumer, raising or forgetful handler) is delivered again,
  with ``attempt`` one higher. A subscription holds at most ``concurrency``
  unsettled handler calls and prefetches nothing beyond them, so the other
  members of its group get the rest.
* **Order.** One subscription with ``concurrency=1`` sees a group's first
  deliveries in publish order (redeliveries may come later).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from lms_shared.events._errors import InvalidEvent

__all__ = [
    "REQUIRED_ATTRIBUTES",
    "Delivery",
    "Handler",
    "Message",
    "Subscription",
    "SubscriptionSpec",
    "Transport",
    "unchecked_message",
]

REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
"""The context attributes every CloudEvent (so every message) carries."""

_NAME = re.compile(r"[a-z0-9]+")
_COMMON_NAMES = frozenset(
    {
        *REQUIRED_ATTRIBUTES,
        *("datacontenttype", "dataschema", "subject", "time", "traceparent", "tracestate"),
        *("correlationid", "causationid", "tenant", "partitionkey", "schemaversion", "deadline"),
    }
)
"""Names every message carries, lower-case ``a-z0-9`` by construction (a set look-up)."""
_GROUP = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class Message:
    """One event on the wire, binding-neutral (CloudEvents binary mode).

    Attributes:
        attributes: the context attributes, extensions included, by name, in
            their canonical string forms (``id``, ``source``, ``specversion``,
            ``type``, ``time``, ``datacontenttype``, ``partitionkey``, ...).
            Stored as a read-only copy.
        data: the event data, exactly as published.

    Raises:
        InvalidEvent: a required attribute (``id``, ``source``,
            ``specversion``, ``type``) is missing or empty, a name is not
            lower-case ``a-z0-9``, a value is not a string, or ``data`` is not
            bytes.
    """

    attributes: Mapping[str, str]
    data: bytes = b""

    def __post_init__(self) -> None:
        attributes = dict(self.attributes)
        # the usual names and only strings (two checks at C speed), else one by one
        if not (_COMMON_NAMES.issuperset(attributes) and _all_strings(attributes.values())):
            for name, value in attributes.items():
                if name not in _COMMON_NAMES and (
                    not isinstance(name, str) or not _NAME.fullmatch(name)
                ):
                    raise InvalidEvent(f"attribute name {name!r} is not lower-case a-z0-9")
                if not isinstance(value, str):
                    raise InvalidEvent(f"attribute {name!r} is not a string")
        for name in REQUIRED_ATTRIBUTES:
            if not attributes.get(name):
                raise InvalidEvent(f"required attribute {name!r} is missing or empty")
        if not isinstance(self.data, bytes):
            raise InvalidEvent("message data must be bytes")
        object.__setattr__(self, "attributes", MappingProxyType(attributes))

    @property
    def id(self) -> str:
        """The event ``id`` (with ``source``, unique per event: the deduplication key)."""
        return self.attributes["id"]

    @property
    def type(self) -> str:
        """The event ``type`` (what subscriptions filter on)."""
        return self.attributes["type"]

    @property
    def key(self) -> str | None:
        """The ``partitionkey`` extension: events with one key belong together."""
        return self.attributes.get("partitionkey")


def _all_strings(values: Iterable[object]) -> bool:
    """Whether every value is a ``str`` (``str.join`` refuses anything else)."""
    try:
        "".join(values)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def unchecked_message(attributes: dict[str, str], data: bytes) -> Message:
    """A :class:`Message` of a valid CloudEvent's attributes, built without checking them again.

    For this package's writers only: ``attributes`` are the canonical
    strings of an event that passed every check (so the names are
    lower-case ``a-z0-9`` and the required ones are there), in a dict that
    nothing else keeps (it is wrapped, not copied).
    """
    message = object.__new__(Message)
    object.__setattr__(message, "attributes", MappingProxyType(attributes))
    object.__setattr__(message, "data", data)
    return message


@runtime_checkable
class Delivery(Protocol):
    """One delivery of a message to a handler; settle it with ack or retry.

    Settling twice is a no-op (the first call wins). A delivery settled
    after its ``ack_wait`` ran out may already have been delivered again.
    """

    @property
    def message(self) -> Message:
        """The delivered message."""
        ...

    @property
    def attempt(self) -> int:
        """1 on the first delivery, one more on each redelivery (kept across republish)."""
        ...

    @property
    def position(self) -> str:
        """The transport's position of the message (stream sequence, entry id, row id)."""
        ...

    async def ack(self) -> None:
        """The message is handled: never deliver it to this group again.

        A transport may send the ack after this returns (coalesced with
        others, or without waiting for the broker's answer), but before its
        subscription's ``stop`` returns; an ack the broker never gets only
        means a redelivery.
        """
        ...

    async def retry(self, delay: float) -> None:
        """Deliver the message again after ``delay`` seconds, with ``attempt`` + 1.

        Raises:
            ValueError: ``delay`` is negative.
        """
        ...


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """What a subscription receives and how much it handles at once.

    Attributes:
        group: competing consumers share a group; each group gets every
            event of its types (fan-out). Lower-case ``a-z0-9._-``, at most
            64 characters, so every broker can name a queue after it.
        types: the exact event types to receive (at least one).
        concurrency: the most handler calls in flight (unsettled) at once.
        ack_wait: seconds after which an unsettled delivery is delivered again.

    Raises:
        ValueError: an argument is out of range.
    """

    group: str
    types: tuple[str, ...]
    concurrency: int = 16
    ack_wait: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.group, str) or not _GROUP.fullmatch(self.group):
            raise ValueError(f"group {self.group!r} must match {_GROUP.pattern}")
        types = tuple(self.types)
        if isinstance(self.types, str) or not types:
            raise ValueError("types must be a non-empty tuple of event types")
        if not all(isinstance(t, str) and t for t in types):
            raise ValueError("every event type must be a non-empty string")
        object.__setattr__(self, "types", tuple(dict.fromkeys(types)))
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not self.ack_wait > 0:
            raise ValueError("ack_wait must be positive")


Handler = Callable[[Delivery], Awaitable[None]]
"""Called once per delivery. It settles the delivery; an exception leaves it
unsettled (redelivered after ``ack_wait``) and is logged by the transport."""


@runtime_checkable
class Subscription(Protocol):
    """A running subscription, returned by :meth:`Transport.subscribe`."""

    async def stop(self, *, drain: bool = True, timeout: float = 30.0) -> None:
        """Stop fetching; with ``drain``, wait up to ``timeout`` for in-flight handlers.

        Handlers still running after the timeout (or at once without
        ``drain``) are cancelled; their deliveries stay unsettled and are
        delivered again after ``ack_wait``. Stopping twice is a no-op.
        """
        ...


@runtime_checkable
class Transport(Protocol):
    """A broker connection that publishes and delivers :class:`Message` values.

    ``start`` and ``stop`` are called by the owner (the service lifespan);
    ``stop`` is idempotent and stops every subscription without draining.
    """

    @property
    def name(self) -> str:
        """The backend's name (``memory``, ``nats``, ``rabbitmq``, ``redis``, ``sqlite``)."""
        ...

    @property
    def keeps_history(self) -> bool:
        """Whether :meth:`rewind` works (the broker retains acked events)."""
        ...

    @property
    def native_delay(self) -> bool:
        """Whether :meth:`Delivery.retry` delays in the broker (else by republishing)."""
        ...

    async def start(self) -> None:
        """Connect and create what the transport needs.

        Raises:
            TransportUnavailable: the broker cannot be reached.
        """
        ...

    async def stop(self) -> None:
        """Stop every subscription (without draining) and disconnect."""
        ...

    async def ping(self) -> None:
        """Check the broker answers (readiness).

        Raises:
            TransportUnavailable: it does not.
        """
        ...

    async def publish(self, messages: Sequence[Message]) -> None:
        """Store every message; return only once the broker confirmed each.

        Raises:
            PublishFailed: not started, unreachable, refused or unconfirmed.
        """
        ...

    async def subscribe(self, spec: SubscriptionSpec, handler: Handler) -> Subscription:
        """Start delivering the group's events of ``spec.types`` to ``handler``.

        Raises:
            TransportUnavailable: not started or unreachable.
        """
        ...

    async def rewind(
        self,
        group: str,
        types: Sequence[str],
        *,
        since: datetime | None = None,
        position: str | None = None,
    ) -> None:
        """Deliver the group's retained events of ``types`` again, from a point on.

        The point is the first event stored at or after ``since``, or at or
        after ``position``; with neither, the oldest retained event.

        Raises:
            ReplayUnsupported: the transport keeps no history.
            ValueError: both ``since`` and ``position`` are given, or
                ``position`` is not one of this transport's positions.
        """
        ...
