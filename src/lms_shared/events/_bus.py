"""The event bus: typed publish and subscribe over any transport, nothing lost.

::

    bus = EventBus(transport, source="/courses", group="courses", clock=clock)
    bus.publishes(CoursePublished)                      # declared: validated, in AsyncAPI

    @bus.subscribe(EnrollmentCreated, concurrency=8)    # group: the bus's, by default
    async def on_enrolled(event: EnrollmentCreated, tx: AsyncSession) -> None:
        ...                                             # tx: the inbox's unit of work

    await bus.publish(CoursePublished(...))             # stamped, validated, confirmed
    await bus.publish(CoursePublished(...), outbox=tx)  # with the state change (outbox)

**Publishing** validates every event against its model before anything is
sent (an invalid one raises and nothing of the batch leaves) and stamps
each with the trace context (:func:`~lms_shared.events._trace.current_trace_context`,
or a new trace), a correlation id and a causation id (the handled event's,
or the HTTP request's), the tenant, the schema version, an optional
partition key and deadline.

**Consuming**, per delivery: a replay addressed to another group is acked
unseen; an envelope that is not a valid CloudEvent, a type or version this
service cannot read, data that fails the model, an event past its
``deadline``, or one delivered more than ``max_attempts`` times is
dead-lettered at once with the reason; otherwise the handler runs (inside
the inbox's unit of work when there is an inbox: duplicates are acked
unseen), and the delivery is acked after it returns. A handler that raises
is retried after a backoff with full jitter (the transport really delays
the redelivery) until ``max_attempts``, then dead-lettered with the error,
the attempt count, the handler, the group and the trace id. Nothing in a
delivery can crash the consumer: if even the dead-letter store fails, the
event stays with the broker and comes back later.

**Stopping** drains: subscriptions stop taking deliveries and wait for
their handlers (up to ``drain_timeout``), the outbox relay publishes what
is pending, then the transport disconnects.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal, TypeVar, overload

from lms_shared.clock import Clock, SystemClock
from lms_shared.errors import ConfigurationError
from lms_shared.events._attributes import ExtensionValue
from lms_shared.events._binary import from_message, to_messages
from lms_shared.events._dead_letters import (
    REPLAY_GROUP,
    DeadLetter,
    DeadLetterQuery,
    DeadLetterStore,
    MemoryDeadLetterStore,
    ReplayReport,
    describe_error,
    replay_dead_letters,
)
from lms_shared.events._envelope import DEFAULT_LIMITS, CloudEvent, EnvelopeLimits
from lms_shared.events._errors import EventSchemaError, InvalidEvent, UnknownEventType
from lms_shared.events._factory import transport_from_url
from lms_shared.events._inbox import DuplicateDelivery, Inbox
from lms_shared.events._outbox import OutboxRelay, OutboxStore
from lms_shared.events._schema import Event, EventRegistry
from lms_shared.events._trace import (
    consumer_span,
    current_trace_context,
    new_trace_context,
    producer_span,
)
from lms_shared.events._transport import Delivery, Subscription, SubscriptionSpec, Transport
from lms_shared.observability import Tracing, current_request_id, get_logger
from lms_shared.redaction import Redactor
from lms_shared.resilience import Backoff
from lms_shared.settings import Settings

__all__ = [
    "DEFAULT_BACKOFF",
    "EventBus",
    "EventContext",
    "Outcome",
    "RetryPolicy",
    "current_event",
]

E = TypeVar("E", bound=Event)
H = TypeVar("H", bound=Callable[..., Awaitable[None]])

DEFAULT_BACKOFF = Backoff(initial=1.0, maximum=300.0)
"""Retries of a failed handler: full jitter under 1 s, 2 s, 4 s, ... at most 5 minutes."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failing handler is tried and how long the bus waits in between.

    Attributes:
        max_attempts: deliveries before the event is dead-lettered (1: no retry).
        backoff: the delay before each redelivery (full jitter).
    """

    max_attempts: int = 5
    backoff: Backoff = DEFAULT_BACKOFF

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


@dataclass(frozen=True, slots=True)
class EventContext:
    """The delivery a handler is running for (see :func:`current_event`).

    Attributes:
        event: the CloudEvent as delivered (attributes, extensions, data).
        group: the subscription group.
        attempt: 1 on the first delivery.
    """

    event: CloudEvent
    group: str
    attempt: int


_current: ContextVar[EventContext | None] = ContextVar("lms_event_context", default=None)


def current_event() -> EventContext | None:
    """The event the running handler handles, or ``None`` outside handlers.

    Events published while it is set continue its trace and correlation,
    name it as their cause and keep its tenant.
    """
    return _current.get()


Result = Literal["handled", "duplicate", "retry", "dead", "skipped", "kept"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the bus did with one delivery (for observers: tests, metrics).

    Attributes:
        group: the subscription group.
        handler: the handler's qualified name (``None`` when none was reached).
        event_id: the event's ``id``.
        event_type: the event's ``type``.
        attempt: the delivery's attempt.
        result: ``handled`` (acked after the handler), ``duplicate`` (the
            inbox had it), ``retry`` (redelivery after ``delay``), ``dead``
            (dead-lettered for ``reason``), ``skipped`` (a replay for another
            group), ``kept`` (not settled: the dead-letter store failed).
        delay: the retry delay, for ``retry`` and ``kept``.
        reason: the dead-letter reason, for ``dead``.
    """

    group: str
    handler: str | None
    event_id: str
    event_type: str
    attempt: int
    result: Result
    delay: float | None = None
    reason: str | None = None


@dataclass(eq=False, slots=True)
class _Handler:
    fn: Callable[..., Awaitable[None]]
    events: tuple[type[Event], ...]
    name: str
    takes_tx: bool
    concurrency: int
    policy: RetryPolicy
    slots: asyncio.Semaphore


@dataclass(eq=False, slots=True)
class _Group:
    name: str
    ack_wait: float
    handlers: dict[str, _Handler] = field(default_factory=dict)
    subscription: Subscription | None = None


class EventBus:
    """Publishes typed events and runs their handlers, with retries, dead letters and drain.

    A lifecycle component (``name`` is ``"events"``): :meth:`start` connects
    the transport, starts the outbox relay and opens the subscriptions;
    :meth:`stop` drains them. ``service.events`` is one, built from
    ``LMS_EVENTS_URL`` by :meth:`from_settings`.

    Args:
        transport: the broker connection (the bus starts and stops it).
        source: the CloudEvents ``source`` of what this bus publishes
            (``/courses``).
        group: the default subscription group (the service's name).
        registry: the event classes; the bus adds the ones it publishes and
            subscribes to.
        clock: stamps ``time``, judges deadlines, paces replays.
        dead_letters: where given-up events go; in memory by default (see
            :meth:`use_database`).
        inbox: deduplicates per group; none by default.
        outbox: the outbox of ``publish(..., outbox=tx)``; none by default.
        retry: the default retry policy of subscriptions.
        drain_timeout: seconds :meth:`stop` waits for running handlers.
        limits: bounds of delivered envelopes.
        random: the jitter's source of floats in ``[0, 1)``.
        redactor: redacts dead letters' error texts.
        relay_sweep: seconds between the outbox relay's sweeps.
    """

    name = "events"

    def __init__(
        self,
        transport: Transport,
        *,
        source: str,
        group: str = "default",
        registry: EventRegistry | None = None,
        clock: Clock | None = None,
        dead_letters: DeadLetterStore | None = None,
        inbox: Inbox | None = None,
        outbox: OutboxStore | None = None,
        retry: RetryPolicy | None = None,
        drain_timeout: float = 10.0,
        limits: EnvelopeLimits = DEFAULT_LIMITS,
        random: Callable[[], float] = random.random,
        redactor: Redactor | None = None,
        relay_sweep: float = 30.0,
        tracing: Tracing | None = None,
    ) -> None:
        if not drain_timeout > 0:
            raise ValueError("drain_timeout must be positive")
        SubscriptionSpec(group, ("probe",))  # the same group rules as subscriptions
        self.transport = transport
        self.source = source
        self.group = group
        self.clock: Clock = clock or SystemClock()
        self.registry = registry or EventRegistry(clock=self.clock, limits=limits)
        self.dead_letters: DeadLetterStore = dead_letters or MemoryDeadLetterStore()
        self.inbox = inbox
        self.retry = retry or RetryPolicy()
        self.drain_timeout = drain_timeout
        self.limits = limits
        self.random = random
        self.redactor = redactor or Redactor()
        self.relay_sweep = relay_sweep
        # producer and consumer spans (the service sets its own); else the current one's
        self.tracing = tracing
        self.outbox: OutboxStore | None = None
        self.relay: OutboxRelay | None = None
        self._published: dict[str, type[Event]] = {}
        self._consumed: dict[str, type[Event]] = {}
        self._groups: dict[str, _Group] = {}
        self._observers: list[Callable[[Outcome], None]] = []
        self._started = False
        self._log = get_logger("lms.events", source=source)
        if outbox is not None:  # last: it reads the state above
            self.use_outbox(outbox)

    @classmethod
    def from_settings(
        cls, service: str, settings: Settings, *, clock: Clock | None = None
    ) -> EventBus:
        """The bus of ``service`` on the transport ``LMS_EVENTS_URL`` names.

        Its source is ``/<service>``, its default group the service's name,
        and it drains within ``LMS_DRAIN_TIMEOUT`` (at most half the
        component timeout, so the transport still stops in time).

        Raises:
            ConfigurationError: the URL names no known transport, or its
                driver is not installed.
        """
        clock = clock or SystemClock()
        transport = transport_from_url(
            settings.events_url, clock=clock, state_dir=settings.state_dir
        )
        return cls(
            transport,
            source=f"/{service}",
            group=service,
            clock=clock,
            drain_timeout=min(settings.drain_timeout, settings.component_timeout / 2),
        )

    # -- wiring ------------------------------------------------------------

    def use_outbox(self, outbox: OutboxStore) -> None:
        """Publish ``publish(..., outbox=tx)`` through ``outbox`` (a relay starts with the bus).

        Raises:
            RuntimeError: the bus has started.
        """
        if self._started:
            raise RuntimeError("the outbox is chosen before the bus starts")
        self.outbox = outbox
        self.relay = OutboxRelay(
            outbox, self.transport, clock=self.clock, sweep=self.relay_sweep, random=self.random
        )

    def use_database(self, database: Any, *, inbox: bool = True) -> None:
        """Keep the outbox, the inbox and the dead letters in a service's database.

        ``database`` is the service's :class:`~lms_shared.db.Database` (or an
        ``AsyncEngine``). Its migrations create the tables: add
        :func:`lms_shared.events.sql.event_tables` to the service's
        ``MetaData`` (or call :func:`lms_shared.events.sql.create_event_tables`).

        Raises:
            RuntimeError: the bus has started.
        """
        # only services that keep events in their database import SQLAlchemy
        from lms_shared.events import sql  # noqa: PLC0415

        self.use_outbox(sql.SqlOutbox(database, clock=self.clock))
        self.dead_letters = sql.SqlDeadLetterStore(database)
        if inbox:
            self.inbox = sql.SqlInbox(database, clock=self.clock)

    def observe(self, observer: Callable[[Outcome], None]) -> None:
        """Call ``observer`` with the :class:`Outcome` of every delivery (tests, metrics)."""
        self._observers.append(observer)

    def publishes(self, *events: type[Event]) -> None:
        """Declare the event classes this bus publishes (validated, in AsyncAPI).

        Raises:
            ValueError: an abstract event class, or another class has its type.
        """
        for event in events:
            self.registry.register(event)
            self._published[event.event_type()] = event

    @property
    def published_events(self) -> tuple[type[Event], ...]:
        """The declared published classes, by type."""
        return tuple(self._published[t] for t in sorted(self._published))

    @property
    def consumed_events(self) -> tuple[type[Event], ...]:
        """The subscribed classes, by type."""
        return tuple(self._consumed[t] for t in sorted(self._consumed))

    @property
    def groups(self) -> tuple[str, ...]:
        """The subscription groups, sorted."""
        return tuple(sorted(self._groups))

    def group_types(self, group: str) -> tuple[str, ...]:
        """The event types ``group`` handles (none for an unknown group), sorted."""
        entry = self._groups.get(group)
        return tuple(sorted(entry.handlers)) if entry is not None else ()

    def subscribe(
        self,
        *events: type[Event],
        group: str | None = None,
        concurrency: int = 16,
        max_attempts: int | None = None,
        backoff: Backoff | None = None,
        ack_wait: float = 30.0,
    ) -> Callable[[H], H]:
        """Decorator: run the function for every event of these classes in ``group``.

        The function takes the event, or the event and ``tx``: the inbox's
        unit of work (an ``AsyncSession`` with ``use_database``), committed
        with the record that the event was handled. Handlers of one group
        share one subscription (competing consumers); every group gets
        every event (fan-out).

        Args:
            *events: the event classes (at least one).
            group: the subscription group; the bus's ``group`` by default.
            concurrency: the most calls of this handler at once.
            max_attempts: deliveries before dead-lettering (the bus's default).
            backoff: delays between attempts (the bus's default).
            ack_wait: seconds a delivery may stay unsettled before the broker
                delivers it again (longer than the handler ever takes).

        Raises:
            ValueError: no event, an abstract one, a bad group or limit, or
                another handler of the group already takes one of the types.
            TypeError: the function is not ``async`` or takes neither one
                nor two arguments.
            RuntimeError: the bus has started.
        """
        if not events:
            raise ValueError("subscribe needs at least one event class")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self._started:
            raise RuntimeError("subscribe before the bus starts")
        name = group or self.group
        SubscriptionSpec(name, tuple(e.event_type() for e in events), ack_wait=ack_wait)
        policy = RetryPolicy(
            max_attempts if max_attempts is not None else self.retry.max_attempts,
            backoff or self.retry.backoff,
        )

        def decorate(fn: H) -> H:
            takes_tx = _takes_tx(fn)
            entry = self._groups.get(name)
            if entry is None:
                entry = self._groups.setdefault(name, _Group(name, ack_wait))
            types = [event.event_type() for event in events]
            for event_type in types:
                if event_type in entry.handlers:
                    other = entry.handlers[event_type].name
                    raise ValueError(
                        f"group {name!r} already handles {event_type!r} with {other}; "
                        "use another group"
                    )
            handler = _Handler(
                fn,
                tuple(events),
                f"{fn.__module__}.{fn.__qualname__}",
                takes_tx,
                concurrency,
                policy,
                asyncio.Semaphore(concurrency),
            )
            for event in events:
                self.registry.register(event)
                self._consumed[event.event_type()] = event
                entry.handlers[event.event_type()] = handler
            entry.ack_wait = max(entry.ack_wait, ack_wait)
            return fn

        return decorate

    # -- lifecycle ---------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the bus has started and not stopped."""
        return self._started

    async def start(self) -> None:
        """Connect the transport, start the outbox relay, open every subscription.

        Raises:
            TransportUnavailable: the broker cannot be reached.
            ConfigurationError: a handler takes ``tx`` but the bus has no inbox.
        """
        if self._started:
            return
        for entry in self._groups.values():
            for handler in entry.handlers.values():
                if handler.takes_tx and self.inbox is None:
                    raise ConfigurationError(
                        f"{handler.name} takes the inbox's tx, but the bus has no inbox: "
                        "call bus.use_database(service.db)"
                    )
        await self.transport.start()
        try:
            if self.relay is not None:
                await self.relay.start()
            for entry in self._groups.values():
                handlers = {id(h): h for h in entry.handlers.values()}.values()
                spec = SubscriptionSpec(
                    entry.name,
                    tuple(entry.handlers),
                    concurrency=sum(h.concurrency for h in handlers),
                    ack_wait=entry.ack_wait,
                )
                entry.subscription = await self.transport.subscribe(
                    spec, partial(self._deliver, entry)
                )
        except BaseException:
            await self._close()
            raise
        self._started = True
        self._log.info(
            "event bus started",
            transport=self.transport.name,
            groups=sorted(self._groups),
            outbox=self.relay is not None,
        )

    async def stop(self) -> None:
        """Drain: stop the subscriptions (waiting for handlers), flush the outbox, disconnect."""
        was_started, self._started = self._started, False
        await self._close()
        if was_started:
            self._log.info("event bus stopped")

    async def _close(self) -> None:
        subscriptions = [e.subscription for e in self._groups.values() if e.subscription]
        for entry in self._groups.values():
            entry.subscription = None
        await asyncio.gather(
            *(s.stop(drain=True, timeout=self.drain_timeout) for s in subscriptions),
            return_exceptions=True,
        )
        if self.relay is not None:
            await self.relay.stop(timeout=self.drain_timeout)
        await self.transport.stop()

    async def ping(self) -> str:
        """Readiness: the broker answers.

        Returns:
            A one-line summary for the health report.

        Raises:
            TransportUnavailable: it does not.
        """
        await self.transport.ping()
        summary = f"{self.transport.name}; {len(self._groups)} group(s)"
        relay = self.relay
        if relay is not None:
            summary += f"; outbox relay {'running' if relay.running else 'stopped'}"
            if relay.failures:
                summary += f", failing ({relay.failures}x: {relay.last_error})"
        return summary

    async def flush(self) -> int:
        """Publish every pending outbox row now (tests, tools); returns how many.

        Raises:
            PublishFailed: the broker did not confirm (the rows stay).
        """
        return 0 if self.relay is None else await self.relay.flush()

    # -- publishing --------------------------------------------------------

    @overload
    async def publish(
        self,
        events: Event,
        *,
        outbox: Any = None,
        key: str | None = None,
        subject: str | None = None,
        tenant: str | None = None,
        deadline: datetime | timedelta | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        extensions: dict[str, ExtensionValue] | None = None,
    ) -> CloudEvent: ...

    @overload
    async def publish(
        self,
        events: Sequence[Event],
        *,
        outbox: Any = None,
        key: str | None = None,
        subject: str | None = None,
        tenant: str | None = None,
        deadline: datetime | timedelta | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        extensions: dict[str, ExtensionValue] | None = None,
    ) -> list[CloudEvent]: ...

    async def publish(
        self,
        events: Event | Sequence[Event],
        *,
        outbox: Any = None,
        key: str | None = None,
        subject: str | None = None,
        tenant: str | None = None,
        deadline: datetime | timedelta | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        extensions: dict[str, ExtensionValue] | None = None,
    ) -> CloudEvent | list[CloudEvent]:
        """Publish one event or a batch, all validated before any is sent.

        Args:
            events: an event, or a sequence of them (published together).
            outbox: a unit of work (``AsyncSession``) to write the events
                into instead of publishing now: they are published after it
                commits, and never if it rolls back.
            key: the partition key (events with one key stay in order where
                the broker keeps order).
            subject: what the events are about, within the source.
            tenant: the tenant; the handled event's by default.
            deadline: when handling stops being useful (a time, or a delay
                from now); later deliveries are dead-lettered as ``expired``.
            correlation_id: the business operation's id; by default the
                handled event's, else the HTTP request's, else a new one.
            causation_id: what caused the events; by default the handled
                event's id, else the HTTP request's id.
            extensions: further extension attributes.

        Returns:
            The CloudEvent, or the list of them, as published.

        Raises:
            UnknownEventType: an event's class is not declared
                (:meth:`publishes` or :meth:`subscribe`).
            InvalidEventData: an event fails its model (nothing is sent).
            InvalidEvent: an attribute is invalid (nothing is sent).
            PublishFailed: the broker did not confirm (without ``outbox``).
            ConfigurationError: ``outbox`` is given but the bus has none.
        """
        batch = [events] if isinstance(events, Event) else list(events)
        if outbox is not None and self.outbox is None:
            raise ConfigurationError(
                "publish(..., outbox=tx) needs an outbox: call bus.use_database(service.db)"
            )
        types = [getattr(type(event), "schema_name", None) or "event" for event in batch]
        # the events carry the producer span's context (through the outbox too)
        with producer_span(self.tracing, self.transport.name, types):
            stamped = self._extensions(
                tenant=tenant,
                deadline=deadline,
                key=key,
                correlation_id=correlation_id,
                causation_id=causation_id,
                extra=extensions,
            )
            cloud_events = self.registry.encode_all(
                (self._declared(event) for event in batch),  # checked in turn, as encoded
                source=self.source,
                subject=subject,
                extensions=stamped,
            )
            messages = to_messages(cloud_events)
            if messages:
                if outbox is not None and self.outbox is not None and self.relay is not None:
                    await self.outbox.add(outbox, messages, on_commit=self.relay.wake)
                else:
                    await self.transport.publish(messages)
        return cloud_events[0] if isinstance(events, Event) else cloud_events

    def _declared(self, event: Event) -> Event:
        if not isinstance(event, Event):
            raise InvalidEvent(f"{type(event).__name__} is not an Event")
        if type(event).schema_name not in self.registry:
            name = type(event).__name__
            raise UnknownEventType(
                f"{name} is not declared: call bus.publishes({name}) first",
                type=type(event).schema_name or name,
            )
        return event

    def _extensions(
        self,
        *,
        tenant: str | None,
        deadline: datetime | timedelta | None,
        key: str | None,
        correlation_id: str | None,
        causation_id: str | None,
        extra: dict[str, ExtensionValue] | None,
    ) -> dict[str, ExtensionValue]:
        handling = _current.get()
        cause = handling.event if handling is not None else None
        request_id = current_request_id()
        trace = current_trace_context() or new_trace_context()
        out: dict[str, ExtensionValue] = dict(extra or {})
        out["traceparent"] = trace.traceparent
        if trace.tracestate:
            out["tracestate"] = trace.tracestate
        correlation = correlation_id or (
            (cause.correlationid or cause.id) if cause is not None else request_id
        )
        out["correlationid"] = correlation or uuid.uuid4().hex
        causation = causation_id or (cause.id if cause is not None else request_id)
        if causation:
            out["causationid"] = causation
        tenant = tenant or (cause.tenant if cause is not None else None)
        if tenant:
            out["tenant"] = tenant
        if key is not None:
            out["partitionkey"] = key
        if isinstance(deadline, timedelta):
            deadline = self.clock.now() + deadline
        if deadline is not None:
            out["deadline"] = deadline
        return out

    # -- dead letters ------------------------------------------------------

    async def replay(
        self,
        query: DeadLetterQuery | None = None,
        *,
        rate: float = 10.0,
        limit: int | None = None,
        dry_run: bool = False,
    ) -> ReplayReport:
        """Publish dead letters again to their groups (see :func:`replay_dead_letters`).

        The transport must be started (the bus, or just ``bus.transport``).
        """
        return await replay_dead_letters(
            self.dead_letters,
            self.transport,
            query or DeadLetterQuery(),
            clock=self.clock,
            rate=rate,
            limit=limit,
            dry_run=dry_run,
        )

    # -- consuming ---------------------------------------------------------

    async def _deliver(self, entry: _Group, delivery: Delivery) -> None:
        try:
            await self._consume(entry, delivery)
        except Exception as exc:  # a bug of ours must not stop the consumer
            self._log.error(
                "event delivery failed unexpectedly",
                group=entry.name,
                event_id=delivery.message.id,
                error=describe_error(exc),
            )
            raise

    async def _consume(self, entry: _Group, delivery: Delivery) -> None:
        message = delivery.message
        target = message.attributes.get(REPLAY_GROUP)
        if target is not None and target != entry.name:
            await delivery.ack()
            self._observe(entry, None, delivery, "skipped")
            return
        handler = entry.handlers.get(message.type)
        if handler is None:
            await self._dead(
                entry,
                None,
                delivery,
                "unknown-event-type",
                f"group {entry.name!r} has no handler for {message.type!r}",
            )
            return
        try:
            cloud_event = from_message(message, limits=self.limits)
        except InvalidEvent as exc:
            await self._dead(entry, handler, delivery, "invalid-event", exc.reason)
            return
        deadline = cloud_event.deadline
        if deadline is not None and deadline <= self.clock.now():
            await self._dead(
                entry, handler, delivery, "expired", f"the deadline {deadline.isoformat()} passed"
            )
            return
        try:
            event = self.registry.decode(cloud_event)
        except EventSchemaError as exc:
            await self._dead(entry, handler, delivery, exc.code.slug, exc.reason)
            return
        policy = handler.policy
        if delivery.attempt > policy.max_attempts:
            await self._dead(
                entry,
                handler,
                delivery,
                "max-attempts",
                f"delivered {delivery.attempt} times, more than the {policy.max_attempts} "
                "allowed, without the handler finishing (crashed or timed out?)",
            )
            return
        try:
            async with handler.slots:
                result = await self._run(entry, handler, cloud_event, event, delivery.attempt)
        except Exception as exc:
            if delivery.attempt >= policy.max_attempts:
                await self._dead(entry, handler, delivery, "handler-failed", describe_error(exc))
                return
            delay = policy.backoff.delay(delivery.attempt, self.random)
            self._log.warning(
                "event handler failed; retrying",
                group=entry.name,
                handler=handler.name,
                event_id=message.id,
                event_type=message.type,
                attempt=delivery.attempt,
                retry_in=round(delay, 3),
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            await delivery.retry(delay)
            self._observe(entry, handler, delivery, "retry", delay=delay)
            return
        await delivery.ack()
        self._observe(entry, handler, delivery, result)

    async def _run(
        self,
        entry: _Group,
        handler: _Handler,
        cloud_event: CloudEvent,
        event: Event,
        attempt: int,
    ) -> Literal["handled", "duplicate"]:
        token = _current.set(EventContext(cloud_event, entry.name, attempt))
        try:
            with consumer_span(
                self.tracing,
                self.transport.name,
                event_type=cloud_event.type,
                event_id=cloud_event.id,
                group=entry.name,
                attempt=attempt,
                traceparent=cloud_event.traceparent,
                tracestate=cloud_event.tracestate,
            ):
                return await self._call(entry, handler, cloud_event, event)
        finally:
            _current.reset(token)

    async def _call(
        self, entry: _Group, handler: _Handler, cloud_event: CloudEvent, event: Event
    ) -> Literal["handled", "duplicate"]:
        if self.inbox is None:
            await handler.fn(event)
            return "handled"
        try:
            async with self.inbox.process(
                entry.name, cloud_event.id, tenant=cloud_event.tenant
            ) as record:
                if record.duplicate:
                    return "duplicate"
                if handler.takes_tx:
                    await handler.fn(event, record.tx)
                else:
                    await handler.fn(event)
        except DuplicateDelivery:
            return "duplicate"
        return "handled"

    async def _dead(
        self,
        entry: _Group,
        handler: _Handler | None,
        delivery: Delivery,
        reason: str,
        error: str,
    ) -> None:
        letter = DeadLetter.create(
            delivery.message,
            group=entry.name,
            handler=handler.name if handler is not None else None,
            reason=reason,
            error=error,
            attempts=delivery.attempt,
            now=self.clock.now(),
            redactor=self.redactor,
        )
        try:
            await self.dead_letters.add(letter)
        except Exception as exc:  # keep the event with the broker; it comes back later
            policy = handler.policy if handler is not None else self.retry
            delay = policy.backoff.delay(max(delivery.attempt, 1), self.random)
            self._log.error(
                "cannot store a dead letter; the event stays with the broker",
                group=entry.name,
                event_id=delivery.message.id,
                reason=reason,
                error=f"{type(exc).__name__}: {exc}"[:300],
                retry_in=round(delay, 3),
            )
            await delivery.retry(delay)
            self._observe(entry, handler, delivery, "kept", delay=delay)
            return
        await delivery.ack()
        self._log.warning(
            "event dead-lettered",
            group=entry.name,
            handler=letter.handler,
            event_id=letter.event_id,
            event_type=letter.event_type,
            reason=reason,
            attempts=letter.attempts,
            trace_id=letter.trace_id,
            letter=letter.id,
        )
        self._observe(entry, handler, delivery, "dead", reason=reason)

    def _observe(
        self,
        entry: _Group,
        handler: _Handler | None,
        delivery: Delivery,
        result: Result,
        *,
        delay: float | None = None,
        reason: str | None = None,
    ) -> None:
        if not self._observers:
            return
        outcome = Outcome(
            entry.name,
            handler.name if handler is not None else None,
            delivery.message.id,
            delivery.message.type,
            delivery.attempt,
            result,
            delay,
            reason,
        )
        for observer in list(self._observers):
            try:
                observer(outcome)
            except Exception as exc:
                self._log.error("event observer failed", error=f"{type(exc).__name__}: {exc}")


def _takes_tx(fn: Callable[..., Awaitable[None]]) -> bool:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"{getattr(fn, '__qualname__', fn)!r} must be an async function")
    parameters = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(parameters) not in (1, 2):
        raise TypeError(
            f"{fn.__qualname__} must take (event) or (event, tx), not {len(parameters)} arguments"
        )
    return len(parameters) == 2
