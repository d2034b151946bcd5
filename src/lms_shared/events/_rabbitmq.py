"""The RabbitMQ transport (aio-pika): quorum queues per group, a stream for history.

Layout, per namespace ``ns`` (created by :meth:`RabbitTransport.start` and
:meth:`RabbitTransport.subscribe`, all durable):

* ``ns.events``: a topic exchange; the routing key is the event type, so a
  type must not contain ``*`` or ``#`` (the topic wildcards).
* ``ns.group.<group>``: one quorum queue per group (``queue_type="classic"``
  for brokers without quorum queues), bound to each type its subscriptions
  take. Members of a group consume from the one queue (competing consumers);
  every group has its own queue (fan-out). Each subscription has its own
  channel with ``prefetch = concurrency``; a delivery is acked after the
  handler.
* ``ns.retry.<group>.<ms>``: classic queues that hold retried events for
  ``<ms>`` (``x-message-ttl``) and dead-letter them back to the group's
  queue (see *delayed redelivery* below). Unused retry queues expire.
* ``ns.dead-letter`` (fanout exchange) and ``ns.dead``: every group queue
  dead-letters here.
* ``ns.history``: a RabbitMQ stream (RabbitMQ 3.9+) bound to every event
  (``history=True``, the default), kept ``history_max_age`` /
  ``history_max_bytes``.

Messages use the CloudEvents AMQP binding in binary mode: the data is the
body, ``datacontenttype`` is the AMQP ``content-type`` and every other
attribute an application property (a header) named ``cloudEvents:<name>``
with its canonical string value (headers named ``cloudEvents_<name>`` and
native AMQP values are read too, as the binding asks). Two headers of ours
ride along: ``lms-attempt`` (the attempt count across republishes) and
``lms-published`` (the publisher's clock, milliseconds since the epoch, which
with the event id makes the :attr:`Delivery.position` ``"<ms>:<id>"``).

What RabbitMQ does natively:

* **Confirmed publish**: publisher confirms; every message is routed to
  durable queues and, for quorum queues and streams, replicated before
  :meth:`RabbitTransport.publish` returns.
* **Groups**: a queue per group (competing consumers, fan-out through the
  topic exchange); ``prefetch = concurrency`` keeps a member from taking more
  than it can handle.
* **At least once**: manual acks; whatever a closed channel or a crashed
  consumer held goes back to the queue. A quorum queue counts the returns
  (``x-delivery-count``), which makes :attr:`Delivery.attempt`.
* **Dead letters of unreadable messages**: a message that is not a
  CloudEvent (missing or mistyped attributes, too large) is rejected into
  ``ns.dead`` through the dead-letter exchange, the broker's ``x-death``
  header naming its queue, instead of reaching a handler. (The bus's dead
  letters, after its retries, are the bus's own and not this transport's.)

What this transport emulates:

* **ack_wait**: RabbitMQ has no per-delivery deadline, so a timer of the
  transport's event loop nacks (requeues) a delivery unsettled after
  ``ack_wait``. On a classic queue, which does not count returns, it
  republishes the event with the next attempt instead and acks the original.
* **Delayed redelivery** (:attr:`native_delay` is false): stock RabbitMQ
  cannot delay a message and this transport does not use the
  delayed-message plugin. :meth:`Delivery.retry` republishes the event,
  its attempt one higher, to the retry queue of its delay (rounded to two
  significant digits); the broker holds it there for that long and
  dead-letters it back to the group's queue only, so it really waits. The
  original is acked after the broker confirmed the copy.
* **Replay**: classic and quorum queues keep no history (an acked message
  is gone), so :meth:`rewind` reads the ``ns.history`` stream from a time
  (the stream's chunk time less ``clock_skew``, then filtered by
  ``lms-published``) or a position, up to a marker it publishes first, and
  republishes the matching events to the group's queue only. With
  ``history=False`` there is no stream, :attr:`keeps_history` is false and
  :meth:`rewind` raises :class:`ReplayUnsupported`.

What does not hold:

* **Per-key order**: RabbitMQ has no key affinity. Only one subscription
  with ``concurrency=1`` sees its group's events in publish order; with more
  concurrency, or more members, two events of one ``partitionkey`` may be
  handled at the same time or out of order. Redeliveries (ack_wait returns,
  retries) come back behind newer events.
* **One set of types per group**: a group's queue is bound to the types of
  all its subscriptions, and a member acks (drops) an event of a type it
  does not take. Give every member of a group the same types.
* **Positions and times are the publisher's**: :attr:`Delivery.position` is
  ``"<publisher ms>:<event id>"``, not a broker sequence, and ``since``
  compares with the publisher's clock. A rewind also redelivers events the
  group has not yet settled (at least once: deduplicate by event id).
* **Attempts on classic queues**: a crash or a stop returns a message with
  RabbitMQ's ``redelivered`` flag only, so however often that happened it
  counts as one more attempt.
* **Broker limits**: RabbitMQ's ``consumer_timeout`` (30 minutes by default)
  closes a channel that holds a delivery longer, so keep ``ack_wait`` below
  it. RabbitMQ 4 gives quorum queues a default ``delivery-limit`` (20): a
  message returned more often is dead-lettered into ``ns.dead``.
* Timers (``ack_wait``) run on the event loop's monotonic clock; this
  transport does not run on an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from lms_shared.events._attributes import canonical
from lms_shared.events._broker import (
    HandlerTasks,
    boolean,
    check_namespace,
    check_size,
    describe,
    message_size,
    split_options,
)
from lms_shared.events._envelope import DEFAULT_LIMITS, EnvelopeLimits
from lms_shared.events._errors import (
    InvalidEvent,
    PublishFailed,
    ReplayUnsupported,
    TransportUnavailable,
)
from lms_shared.events._transport import Delivery, Handler, Message, SubscriptionSpec
from lms_shared.observability import get_logger
from lms_shared.redaction import redact_url

if TYPE_CHECKING:
    from aio_pika.abc import (
        AbstractChannel,
        AbstractExchange,
        AbstractIncomingMessage,
        AbstractQueue,
        AbstractRobustConnection,
    )

__all__ = ["ATTEMPT_HEADER", "ATTRIBUTE_PREFIX", "PUBLISHED_HEADER", "RabbitTransport"]

ATTRIBUTE_PREFIX = "cloudEvents:"
"""The application-property prefix of the CloudEvents AMQP binding (binary mode)."""
_PREFIXES = (ATTRIBUTE_PREFIX, "cloudEvents_")
ATTEMPT_HEADER = "lms-attempt"
"""The header that carries the attempt count across republishes."""
PUBLISHED_HEADER = "lms-published"
"""The header with the publisher's clock (milliseconds since the epoch)."""
_MARKER_HEADER = "lms-marker"
_QUEUE_TYPES = ("quorum", "classic")
_SHORTSTR = 255  # AMQP short strings: routing keys, content-type, message-id
_MAX_HEADER_BYTES = 64 * 1024  # the content header frame must fit in one frame
_SPARE_HEADERS = 16  # x-death, x-delivery-count, ours: room beyond the attributes
_RETRY_QUEUE_IDLE_MS = 600_000  # a retry queue unused this long is deleted
_URL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "namespace": str,
    "queue_type": str,
    "history": boolean,
    "history_max_age": str,
    "history_max_bytes": int,
    "timeout": float,
    "connect_timeout": float,
    "clock_skew": float,
}
_POSITION = re.compile(r"([0-9]{1,15}):(.+)", re.DOTALL)
_HISTORY_AGE = re.compile(r"[1-9][0-9]*[YMDhms]")


def _driver() -> Any:
    try:
        import aio_pika  # noqa: PLC0415 - the driver is optional (the rabbitmq extra)
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise TransportUnavailable(
            "the rabbitmq transport needs: pip install 'lms-shared[rabbitmq]'"
        ) from exc
    return aio_pika


def _failures() -> tuple[type[BaseException], ...]:
    """The exceptions a broker call raises when the broker or the channel fails."""
    import aiormq  # noqa: PLC0415 - installed with aio_pika

    return (aiormq.exceptions.AMQPError, OSError, RuntimeError, TimeoutError)


def _bucket(delay: float) -> int:
    """The delay in whole milliseconds, rounded to two significant digits (at least 1)."""
    ms = max(1, round(delay * 1000))
    if ms < 100:
        return ms
    scale: int = 10 ** (len(str(ms)) - 2)
    return (ms + scale // 2) // scale * scale


def _check_routing(event_type: str) -> None:
    if "*" in event_type or "#" in event_type:
        raise ValueError(f"event type {event_type!r} holds a topic wildcard (* or #)")
    if len(event_type.encode()) > _SHORTSTR:
        raise ValueError(f"event type {event_type!r} is longer than {_SHORTSTR} bytes")


def _attribute(name: str, value: object) -> str:
    """An attribute's canonical string from a header value (native AMQP types too)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytearray):
        value = bytes(value)
    if isinstance(value, datetime):
        return canonical(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, bool | int | bytes):
        return canonical(value)
    raise InvalidEvent(f"attribute {name!r} has an unsupported AMQP type")


def _int_header(headers: dict[str, Any], name: str, default: int, minimum: int) -> int:
    value = headers.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidEvent(f"header {name!r} must be an integer of at least {minimum}")
    return int(value)


def decode(incoming: AbstractIncomingMessage, limits: EnvelopeLimits) -> tuple[Message, int, str]:
    """The message, its attempt and its position from an AMQP delivery.

    Raises:
        InvalidEvent: the delivery is not a CloudEvent in binary mode within ``limits``.
    """
    headers: dict[str, Any] = dict(incoming.headers or {})
    if len(headers) > limits.max_attributes + _SPARE_HEADERS:
        raise InvalidEvent(f"a message carries at most {limits.max_attributes} attributes")
    attributes: dict[str, str] = {}
    for key, value in headers.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                name = key[len(prefix) :]
                attributes[name] = _attribute(name, value)
    if incoming.content_type:
        attributes["datacontenttype"] = incoming.content_type
    body = bytes(incoming.body)
    if message_size(attributes, body) > limits.max_bytes:
        raise InvalidEvent(f"the event is larger than {limits.max_bytes} bytes")
    message = Message(attributes, body)
    check_size(message, limits)
    attempt = _int_header(headers, ATTEMPT_HEADER, 1, 1)
    returned = _int_header(headers, "x-delivery-count", 1 if incoming.redelivered else 0, 0)
    published = _int_header(headers, PUBLISHED_HEADER, 0, 0)
    return message, attempt + returned, f"{published}:{message.id}"


def encode(message: Message, attempt: int, published: int, limits: EnvelopeLimits) -> Any:
    """The ``aio_pika.Message`` for ``message`` (binary mode, persistent).

    Raises:
        InvalidEvent: larger than ``limits``, a ``datacontenttype`` longer
            than an AMQP short string, or attributes beyond one frame.
    """
    aio_pika = _driver()
    check_size(message, limits)
    _check_routing_for_publish(message.type)
    headers: dict[str, Any] = {
        ATTRIBUTE_PREFIX + name: value
        for name, value in message.attributes.items()
        if name != "datacontenttype"
    }
    if sum(len(k) + len(v.encode()) for k, v in headers.items()) > _MAX_HEADER_BYTES:
        raise InvalidEvent(f"the event's attributes are larger than {_MAX_HEADER_BYTES} bytes")
    content_type = message.attributes.get("datacontenttype")
    if content_type is not None and len(content_type.encode()) > _SHORTSTR:
        raise InvalidEvent(f"datacontenttype is longer than {_SHORTSTR} bytes")
    headers[ATTEMPT_HEADER] = attempt
    headers[PUBLISHED_HEADER] = published
    message_id = message.id if len(message.id.encode()) <= _SHORTSTR else None
    return aio_pika.Message(
        message.data,
        headers=headers,
        content_type=content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
    )


def _check_routing_for_publish(event_type: str) -> None:
    try:
        _check_routing(event_type)
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from None


class RabbitTransport:
    """A :class:`~lms_shared.events.Transport` on RabbitMQ (aio-pika, robust connection).

    Args:
        url: an ``amqp://`` or ``amqps://`` URL (aio-pika's query options allowed).
        namespace: prefixes every exchange and queue (lower-case ``a-z0-9_-``).
        queue_type: ``"quorum"`` (replicated, counts redeliveries) or
            ``"classic"`` (an ``ack_wait`` expiry republishes with the next
            attempt; returns after crashes count as one more attempt,
            however often they happened).
        history: keep every event in the ``<namespace>.history`` stream, so
            :meth:`rewind` works.
        history_max_age: the stream's retention (``x-max-age``: ``7D``, ``12h``...).
        history_max_bytes: the stream's size bound (``x-max-length-bytes``).
        limits: bounds of what is published and accepted (larger: :class:`InvalidEvent`).
        connect_timeout: seconds the first connection may take.
        timeout: seconds one broker operation (a publish batch, a declare) may take.
        clock_skew: seconds publishers' clocks may differ from the broker's
            (how far before ``since`` :meth:`rewind` starts reading).
    """

    name = "rabbitmq"
    native_delay = False

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        *,
        namespace: str = "lms",
        queue_type: str = "quorum",
        history: bool = True,
        history_max_age: str = "7D",
        history_max_bytes: int = 1_000_000_000,
        limits: EnvelopeLimits = DEFAULT_LIMITS,
        connect_timeout: float = 5.0,
        timeout: float = 10.0,
        clock_skew: float = 60.0,
    ) -> None:
        if not url.startswith(("amqp://", "amqps://")):
            raise ValueError(f"{redact_url(url)!r} is not an amqp:// or amqps:// URL")
        if queue_type not in _QUEUE_TYPES:
            raise ValueError(f"queue_type must be one of {_QUEUE_TYPES}")
        if not _HISTORY_AGE.fullmatch(history_max_age):
            raise ValueError("history_max_age must look like 7D, 12h or 30m")
        if history_max_bytes < 1 or timeout <= 0 or connect_timeout <= 0 or clock_skew < 0:
            raise ValueError("sizes and timeouts must be positive")
        self.url = url
        self.namespace = check_namespace(namespace)
        self.queue_type = queue_type
        self.limits = limits
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.clock_skew = clock_skew
        self._history = history
        self._history_args: dict[str, Any] = {
            "x-queue-type": "stream",
            "x-max-age": history_max_age,
            "x-max-length-bytes": history_max_bytes,
        }
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._admin: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._subscriptions: set[_RabbitSubscription] = set()
        self._retry_queues: dict[str, float] = {}
        self._declared_queues: set[str] = set()
        self._declared_exchanges: set[str] = set()
        self._log = get_logger("lms.events.rabbitmq", namespace=namespace)

    @classmethod
    def from_url(cls, url: str, options: object = None, /, **kwargs: Any) -> RabbitTransport:
        """The transport for ``amqp[s]://user:password@host:port/vhost[?options]``.

        URL options (the rest go to aio-pika): ``namespace``, ``queue_type``,
        ``history`` (``true``/``false``), ``history_max_age``,
        ``history_max_bytes``, ``timeout``, ``connect_timeout``, ``clock_skew``.
        ``kwargs`` (the constructor's) win over them; ``options`` is the
        factory's :class:`~lms_shared.events.TransportOptions` (its namespace).

        Raises:
            ValueError: another scheme or a malformed option.
        """
        clean, arguments = split_options(url, _URL_OPTIONS, options, kwargs)
        return cls(clean, **arguments)

    def __repr__(self) -> str:
        return f"RabbitTransport({redact_url(self.url)!r}, namespace={self.namespace!r})"

    def _describe(self, exc: BaseException) -> str:
        return describe(exc, secret=self.url, shown=redact_url(self.url))

    @property
    def keeps_history(self) -> bool:
        """True with the history stream (``history=True``): :meth:`rewind` works."""
        return self._history

    # names -----------------------------------------------------------------

    @property
    def exchange_name(self) -> str:
        """The topic exchange every event is published to."""
        return f"{self.namespace}.events"

    def group_queue(self, group: str) -> str:
        """The queue of ``group``."""
        return f"{self.namespace}.group.{group}"

    @property
    def history_stream(self) -> str:
        """The stream that keeps every event (with ``history=True``)."""
        return f"{self.namespace}.history"

    @property
    def dead_letter_queue(self) -> str:
        """The queue that keeps messages the groups rejected as not CloudEvents."""
        return f"{self.namespace}.dead"

    @property
    def _dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dead-letter"

    def _group_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": self.queue_type,
            "x-dead-letter-exchange": self._dead_letter_exchange,
        }

    # lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Connect and declare the exchange, the dead-letter queue and the history stream.

        Raises:
            TransportUnavailable: the broker cannot be reached or refuses the layout.
        """
        if self._connection is not None:
            return
        aio_pika = _driver()
        refused: tuple[type[BaseException], ...] = (*_failures(), ValueError)
        try:
            connection = await asyncio.wait_for(
                aio_pika.connect_robust(self.url, timeout=self.connect_timeout),
                self.connect_timeout + 1,
            )
        except refused as exc:
            raise TransportUnavailable(
                f"rabbitmq at {redact_url(self.url)} is unreachable: {self._describe(exc)}"
            ) from exc
        try:
            await asyncio.wait_for(self._declare_layout(connection), self.timeout)
        except _failures() as exc:
            await self._close(connection)
            raise TransportUnavailable(
                f"rabbitmq refused the event layout: {self._describe(exc)}"
            ) from exc
        self._connection = connection

    async def _declare_layout(self, connection: AbstractRobustConnection) -> None:
        aio_pika = _driver()
        self._publisher = await connection.channel(publisher_confirms=True)
        self._admin = admin = await connection.channel(publisher_confirms=False)
        # declared on the publisher's channel: an exchange publishes on the
        # channel it was declared on, and only that one waits for confirms
        self._exchange = await self._publisher.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dlx = await admin.declare_exchange(
            self._dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead = await admin.declare_queue(
            self.dead_letter_queue, durable=True, arguments={"x-queue-type": self.queue_type}
        )
        await dead.bind(dlx)
        self._declared_exchanges |= {self.exchange_name, self._dead_letter_exchange}
        self._declared_queues.add(self.dead_letter_queue)
        if self._history:
            stream = await admin.declare_queue(
                self.history_stream, durable=True, arguments=self._history_args
            )
            await stream.bind(self._exchange, "#")
            self._declared_queues.add(self.history_stream)

    async def stop(self) -> None:
        """Stop every subscription without draining and close the connection (idempotent).

        Bounded: the subscriptions stop side by side and every broker call
        of theirs, like the connection's close, waits at most ``timeout``, so
        a broker that is gone delays ``stop`` by a few ``timeout`` (at most
        five) however many subscriptions there are.
        """
        subscriptions = list(self._subscriptions)
        if subscriptions:
            outcomes = await asyncio.gather(
                *(s.stop(drain=False) for s in subscriptions), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, Exception):  # the connection still closes below
                    self._log.warning(
                        "subscription did not stop cleanly", error=self._describe(outcome)
                    )
        connection, self._connection = self._connection, None
        self._publisher = self._admin = self._exchange = None
        self._retry_queues.clear()
        if connection is not None:
            await self._close(connection)

    async def _close(self, connection: AbstractRobustConnection) -> None:
        with contextlib.suppress(*_failures()):
            await asyncio.wait_for(connection.close(), self.timeout)

    async def ping(self) -> None:
        """Check the broker answers (a passive declare of the exchange).

        Raises:
            TransportUnavailable: not started, disconnected or no answer in ``timeout``.
        """
        if self._connection is None or self._admin is None:
            raise TransportUnavailable("rabbitmq transport is not started")
        if self._connection.is_closed:
            raise TransportUnavailable("rabbitmq connection is closed")
        try:
            await asyncio.wait_for(
                self._admin.declare_exchange(self.exchange_name, passive=True), self.timeout
            )
        except _failures() as exc:
            raise TransportUnavailable(f"rabbitmq does not answer: {self._describe(exc)}") from exc

    async def destroy(self) -> None:
        """Delete every queue and exchange this transport declared (test teardown).

        Their events are lost. Needs no :meth:`start`; a failure is ignored.
        """
        aio_pika = _driver()
        try:
            connection = await aio_pika.connect(self.url, timeout=self.connect_timeout)
        except _failures():
            return
        try:
            for queue in sorted(self._declared_queues):
                with contextlib.suppress(*_failures()):
                    channel = await connection.channel()
                    await channel.queue_delete(queue)
                    await channel.close()
            for exchange in sorted(self._declared_exchanges):
                with contextlib.suppress(*_failures()):
                    channel = await connection.channel()
                    await channel.exchange_delete(exchange)
                    await channel.close()
        finally:
            await self._close(connection)

    # publishing --------------------------------------------------------------

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish every message and wait for each publisher confirm.

        Raises:
            InvalidEvent: a message is larger than ``limits`` or its type holds
                a topic wildcard; nothing is sent.
            PublishFailed: not started, disconnected, refused (``basic.nack``)
                or unconfirmed within ``timeout``; any subset may be stored.
        """
        exchange = self._exchange
        if exchange is None or self._connection is None:
            raise PublishFailed("rabbitmq transport is not started")
        published = time.time_ns() // 1_000_000
        encoded = [(encode(m, 1, published, self.limits), m.type) for m in messages]
        if not encoded:
            return
        if self._connection.is_closed:
            raise PublishFailed("rabbitmq connection is closed")
        try:
            confirmations = await asyncio.wait_for(
                asyncio.gather(
                    *(exchange.publish(m, routing_key=key, mandatory=False) for m, key in encoded)
                ),
                self.timeout,
            )
        except _failures() as exc:
            raise PublishFailed(
                f"rabbitmq did not confirm the events: {self._describe(exc)}"
            ) from exc
        unconfirmed = sum(1 for c in confirmations if not _is_ack(c))
        if unconfirmed:
            raise PublishFailed(f"rabbitmq did not confirm {unconfirmed} of the events")

    async def republish(
        self, group: str, message: Message, *, attempt: int, published: int, delay: float
    ) -> None:
        """Send ``message`` to ``group`` only, after ``delay`` seconds (a retry queue).

        Raises:
            PublishFailed: the broker did not confirm it.
        """
        publisher = self._publisher
        if publisher is None:
            raise PublishFailed("rabbitmq transport is not started")
        try:
            routing_key = self.group_queue(group)
            if delay > 0:
                routing_key = await self._retry_queue(group, _bucket(delay))
            outgoing = encode(message, attempt, published, self.limits)
            confirmed = await asyncio.wait_for(
                publisher.default_exchange.publish(outgoing, routing_key, mandatory=True),
                self.timeout,
            )
        except _failures() as exc:
            raise PublishFailed(
                f"rabbitmq did not confirm the retry: {self._describe(exc)}"
            ) from exc
        if not _is_ack(confirmed):
            raise PublishFailed(f"rabbitmq could not route the retry to {routing_key}")

    async def _retry_queue(self, group: str, ms: int) -> str:
        """The retry queue that waits ``ms`` and dead-letters back to ``group`` (declared)."""
        name = f"{self.namespace}.retry.{group}.{ms}"
        now = time.monotonic()
        declared = self._retry_queues.get(name)
        # redeclared well before it could expire: a declare resets its idle timer
        if declared is None or now - declared > _RETRY_QUEUE_IDLE_MS / 2000:
            admin = self._admin
            if admin is None:
                raise PublishFailed("rabbitmq transport is not started")
            await admin.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-queue-type": "classic",
                    "x-message-ttl": ms,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.group_queue(group),
                    "x-expires": ms + _RETRY_QUEUE_IDLE_MS,
                },
            )
            self._retry_queues[name] = now
            self._declared_queues.add(name)  # kept past stop(): destroy() deletes it
        return name

    # subscribing -------------------------------------------------------------

    async def _declare_group(self, group: str) -> AbstractQueue:
        admin = self._admin
        if admin is None:
            raise TransportUnavailable("rabbitmq transport is not started")
        queue = await admin.declare_queue(
            self.group_queue(group), durable=True, arguments=self._group_arguments()
        )
        self._declared_queues.add(self.group_queue(group))
        return queue

    async def subscribe(self, spec: SubscriptionSpec, handler: Handler) -> _RabbitSubscription:
        """Bind the group's queue to ``spec.types`` and consume from it.

        Raises:
            ValueError: a type holds a topic wildcard or is too long.
            TransportUnavailable: not started, unreachable, or the queue
                exists with other arguments.
        """
        for event_type in spec.types:
            _check_routing(event_type)
        connection, exchange = self._connection, self._exchange
        if connection is None or exchange is None:
            raise TransportUnavailable("rabbitmq transport is not started")
        try:
            # declared and bound on the subscription's own (robust) channel, so a
            # reconnect restores the queue, its bindings and the consumer
            channel = await asyncio.wait_for(
                connection.channel(publisher_confirms=False), self.timeout
            )
            await asyncio.wait_for(channel.set_qos(prefetch_count=spec.concurrency), self.timeout)
            consuming = await asyncio.wait_for(
                channel.declare_queue(
                    self.group_queue(spec.group), durable=True, arguments=self._group_arguments()
                ),
                self.timeout,
            )
            self._declared_queues.add(self.group_queue(spec.group))
            for event_type in spec.types:
                await asyncio.wait_for(consuming.bind(exchange, event_type), self.timeout)
            subscription = _RabbitSubscription(self, spec, handler, channel, consuming)
            await asyncio.wait_for(subscription.start(), self.timeout)
        except _failures() as exc:
            raise TransportUnavailable(
                f"rabbitmq refused the subscription: {self._describe(exc)}"
            ) from exc
        self._subscriptions.add(subscription)
        return subscription

    # replay ------------------------------------------------------------------

    async def rewind(
        self,
        group: str,
        types: Sequence[str],
        *,
        since: datetime | None = None,
        position: str | None = None,
    ) -> None:
        """Republish the history stream's events of ``types`` to ``group``, from a point on.

        Reads the stream from ``since`` (less ``clock_skew``, by the broker's
        chunk times) up to a marker published first, and starts at the first
        event whose ``lms-published`` time is at or after ``since``, or at the
        event of ``position``. The group's other events are untouched.

        Raises:
            ReplayUnsupported: ``history=False``.
            ValueError: both ``since`` and ``position``, or a malformed ``position``.
            TransportUnavailable: not started or the broker failed.
        """
        if not self._history:
            raise ReplayUnsupported(
                "this rabbitmq transport keeps no history (history=False): nothing to rewind"
            )
        if since is not None and position is not None:
            raise ValueError("give since or position, not both")
        start = _Start.of(since, position)
        connection = self._connection
        if connection is None:
            raise TransportUnavailable("rabbitmq transport is not started")
        try:
            await asyncio.wait_for(self._declare_group(group), self.timeout)
            marker = await self._mark_history_end()
            await _Replay(self, connection, group, set(types), start, marker).run()
        except _failures() as exc:
            raise TransportUnavailable(
                f"rabbitmq failed the rewind: {self._describe(exc)}"
            ) from exc

    async def _mark_history_end(self) -> str:
        aio_pika = _driver()
        publisher = self._publisher
        if publisher is None:
            raise TransportUnavailable("rabbitmq transport is not started")
        marker = uuid.uuid4().hex
        confirmed = await asyncio.wait_for(
            publisher.default_exchange.publish(
                aio_pika.Message(b"", headers={_MARKER_HEADER: marker}),
                self.history_stream,
                mandatory=True,
            ),
            self.timeout,
        )
        if not _is_ack(confirmed):
            raise TransportUnavailable("rabbitmq has no history stream to rewind")
        return marker


def _is_ack(confirmation: object) -> bool:
    from pamqp.commands import Basic  # noqa: PLC0415 - installed with aio_pika

    return isinstance(confirmation, Basic.Ack)


class _Start:
    """Where a rewind starts: a time (ms), an event at a position, or the oldest event."""

    def __init__(self, ms: int | None, event_id: str | None) -> None:
        self.ms = ms
        self.event_id = event_id

    @classmethod
    def of(cls, since: datetime | None, position: str | None) -> _Start:
        if position is not None:
            match = _POSITION.fullmatch(position) if isinstance(position, str) else None
            if match is None:
                raise ValueError(f"{position!r} is not a rabbitmq position (<ms>:<event id>)")
            return cls(int(match.group(1)), match.group(2))
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be an aware datetime")
            return cls(int(since.timestamp() * 1000), None)
        return cls(None, None)

    def reached(self, published: int, event_id: str | None) -> bool:
        if self.ms is None:
            return True
        if self.event_id is None:
            return published >= self.ms
        # the event itself, or (if retention dropped it) anything published later
        return event_id == self.event_id or published > self.ms


class _Replay:
    """One rewind: read the history stream up to a marker, republish to one group."""

    batch = 256

    def __init__(
        self,
        transport: RabbitTransport,
        connection: AbstractRobustConnection,
        group: str,
        types: set[str],
        start: _Start,
        marker: str,
    ) -> None:
        self.transport = transport
        self.connection = connection
        self.group = group
        self.types = types
        self.start = start
        self.marker = marker
        self.started = start.ms is None
        self.pending: list[Any] = []

    def _offset(self) -> object:
        if self.start.ms is None:
            return "first"
        skew = timedelta(seconds=self.transport.clock_skew)
        return datetime.fromtimestamp(self.start.ms / 1000, UTC) - skew

    async def run(self) -> None:
        transport = self.transport
        channel = await asyncio.wait_for(self.connection.channel(), transport.timeout)
        try:
            await channel.set_qos(prefetch_count=self.batch)
            stream = await channel.get_queue(transport.history_stream, ensure=False)
            async with stream.iterator(arguments={"x-stream-offset": self._offset()}) as reader:
                while True:
                    incoming = await asyncio.wait_for(anext(reader), transport.timeout)
                    await incoming.ack()
                    headers = incoming.headers or {}
                    if _MARKER_HEADER in headers:
                        if headers[_MARKER_HEADER] == self.marker:
                            break
                        continue
                    self._take(incoming, headers)
                    if len(self.pending) >= self.batch:
                        await self._flush()
            await self._flush()
        finally:
            with contextlib.suppress(*_failures()):
                await channel.close()

    def _take(self, incoming: AbstractIncomingMessage, headers: Any) -> None:
        try:
            message, _, position = decode(incoming, self.transport.limits)
        except InvalidEvent:
            return  # never delivered to a group either
        published = int(position.partition(":")[0])
        if not self.started:
            self.started = self.start.reached(published, message.id)
        if self.started and message.type in self.types:
            self.pending.append(
                encode(message, 1, published, self.transport.limits),
            )

    async def _flush(self) -> None:
        publisher = self.transport._publisher
        if publisher is None:
            raise TransportUnavailable("rabbitmq transport is not started")
        batch, self.pending = self.pending, []
        if not batch:
            return
        key = self.transport.group_queue(self.group)
        results = await asyncio.wait_for(
            asyncio.gather(
                *(publisher.default_exchange.publish(m, key, mandatory=True) for m in batch)
            ),
            self.transport.timeout,
        )
        if not all(_is_ack(r) for r in results):
            raise TransportUnavailable(f"rabbitmq could not route the replay to {key}")


class _RabbitSubscription:
    """One consumer on a group's queue; see :class:`~lms_shared.events.Subscription`."""

    def __init__(
        self,
        transport: RabbitTransport,
        spec: SubscriptionSpec,
        handler: Handler,
        channel: AbstractChannel,
        queue: AbstractQueue,
    ) -> None:
        self.transport = transport
        self.spec = spec
        self.channel = channel
        self.queue = queue
        self.active = True
        self.stopped = False
        self.tag: str | None = None
        self.unsettled: set[_RabbitDelivery] = set()
        self.settling: set[asyncio.Task[None]] = set()
        self.tasks = HandlerTasks(handler, self._failed)

    async def start(self) -> None:
        self.tag = await self.queue.consume(self._on_message, no_ack=False)

    def _failed(self, delivery: Delivery, exc: Exception) -> None:
        self.transport._log.warning(
            "event handler failed",
            group=self.spec.group,
            event_id=delivery.message.id,
            event_type=delivery.message.type,
            attempt=delivery.attempt,
            error=type(exc).__name__,
        )

    async def _on_message(self, incoming: AbstractIncomingMessage) -> None:
        if not self.active:
            with contextlib.suppress(*_failures()):
                await incoming.nack(requeue=True)
            return
        try:
            message, attempt, position = decode(incoming, self.transport.limits)
        except InvalidEvent as exc:
            self.transport._log.warning(
                "message is not a CloudEvent: dead-lettered",
                group=self.spec.group,
                queue=self.transport.dead_letter_queue,
                reason=exc.reason,
            )
            with contextlib.suppress(*_failures()):
                await incoming.reject(requeue=False)
            return
        if message.type not in self.spec.types:
            # the group's queue is bound to a type another member takes
            self.transport._log.warning(
                "event of a type this member does not take: acked unseen",
                group=self.spec.group,
                event_type=message.type,
            )
            with contextlib.suppress(*_failures()):
                await incoming.ack()
            return
        delivery = _RabbitDelivery(self, incoming, message, attempt, position)
        self.tasks.spawn(delivery)

    def settle_later(self, settling: Coroutine[Any, Any, None]) -> None:
        """Run a settlement the ``ack_wait`` timer started; :meth:`stop` waits for it."""
        task = asyncio.get_running_loop().create_task(settling)
        self.settling.add(task)
        task.add_done_callback(self.settling.discard)

    async def stop(self, *, drain: bool = True, timeout: float = 30.0) -> None:
        """Cancel the consumer; with ``drain`` wait up to ``timeout`` for the handlers.

        Closing the channel returns every unsettled delivery to the queue.
        Bounded: each broker call waits at most the transport's ``timeout``,
        and a handler that ignores its cancellation is left behind (logged)
        rather than waited for. Stopping twice is a no-op.
        """
        if self.stopped:
            return
        self.stopped = True
        self.active = False
        bound = self.transport.timeout
        if self.tag is not None:
            with contextlib.suppress(*_failures()):
                await asyncio.wait_for(self.queue.cancel(self.tag), bound)
        stopping = asyncio.ensure_future(self.tasks.stop(drain=drain, timeout=timeout))
        finished, _ = await asyncio.wait({stopping}, timeout=(timeout if drain else 0) + bound)
        if not finished:
            self.transport._log.warning(
                "event handlers ignored their cancellation: left running",
                group=self.spec.group,
                handlers=len(self.tasks),
            )
        for delivery in list(self.unsettled):
            delivery.disarm()
        if self.settling:
            # nacks and republishes the ack_wait timer started (each bounded)
            await asyncio.wait(set(self.settling), timeout=bound)
            for task in list(self.settling):
                task.cancel()
        with contextlib.suppress(*_failures()):
            await asyncio.wait_for(self.channel.close(), bound)
        self.transport._subscriptions.discard(self)


class _RabbitDelivery:
    """One AMQP delivery; see :class:`~lms_shared.events.Delivery`."""

    def __init__(
        self,
        subscription: _RabbitSubscription,
        incoming: AbstractIncomingMessage,
        message: Message,
        attempt: int,
        position: str,
    ) -> None:
        self._subscription = subscription
        self._incoming = incoming
        self._message = message
        self._attempt = attempt
        self._position = position
        self._settled = False
        subscription.unsettled.add(self)
        loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = loop.call_later(
            subscription.spec.ack_wait, self._expire
        )

    @property
    def message(self) -> Message:
        """The delivered message."""
        return self._message

    @property
    def attempt(self) -> int:
        """``lms-attempt`` plus the times the queue returned it (``x-delivery-count``)."""
        return self._attempt

    @property
    def position(self) -> str:
        """``"<published ms>:<event id>"``: a starting point for :meth:`RabbitTransport.rewind`."""
        return self._position

    async def ack(self) -> None:
        """Settle: the group's queue drops the message."""
        if self._settle():
            await self._quietly(self._incoming.ack())

    async def retry(self, delay: float) -> None:
        """Settle, and republish through a retry queue that waits ``delay`` seconds.

        If the broker does not confirm the republish, the message is returned
        to the queue at once instead (its attempt still counts).
        """
        if delay < 0:
            raise ValueError("retry delay must not be negative")
        if not self._settle():
            return
        await self._again(delay)

    async def _again(self, delay: float) -> None:
        transport = self._subscription.transport
        published = int(self._position.partition(":")[0])
        try:
            await transport.republish(
                self._subscription.spec.group,
                self._message,
                attempt=self._attempt + 1,
                published=published,
                delay=delay,
            )
        except (PublishFailed, InvalidEvent) as exc:
            transport._log.warning(
                "retry could not be scheduled: returned to the queue",
                group=self._subscription.spec.group,
                event_id=self._message.id,
                reason=exc.reason,
            )
            await self._quietly(self._incoming.nack(requeue=True))
            return
        await self._quietly(self._incoming.ack())

    def _expire(self) -> None:
        self._timer = None
        if not self._settle():
            return
        if self._subscription.transport.queue_type == "classic":
            # a classic queue does not count returns: republish with the next attempt
            self._subscription.settle_later(self._again(0))
        else:
            self._subscription.settle_later(self._quietly(self._incoming.nack(requeue=True)))

    def disarm(self) -> None:
        """The subscription stops: the channel's close returns the message."""
        self._settled = True
        self._subscription.unsettled.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _settle(self) -> bool:
        if self._settled:
            return False
        self.disarm()
        return True

    async def _quietly(self, settling: Any) -> None:
        # a closed channel already returned the message to the queue
        with contextlib.suppress(*_failures()):
            await asyncio.wait_for(cast("Any", settling), self._subscription.transport.timeout)
