"""The consuming side of the NATS JetStream transport: pull subscriptions and deliveries.

A :class:`NatsSubscription` asks its consumer for at most as many messages
as it has free handler slots (``concurrency``), so it never prefetches
beyond them and the other members of its group get the rest. It keeps a
count of the messages its open pull requests may still bring (*credit*):
when the free slots not yet covered by credit reach a quarter of
``concurrency`` (or nothing is asked for at all) it opens one pull request
for all of them (``batch`` = that many). Each delivered message takes one
from the credit; a request that expires (``408``) or ends early (``409``
consumer deleted or leader changed, ...) gives back what it did not bring
(``Nats-Pending-Messages``, or its whole size when the server does not say).
Requests lost without a status (a leader change, a reconnect) are forgotten
after ``pull_expires`` plus a grace and their credit opened again. Messages
with a ``partitionkey`` are handled one after another per key, in the order
they came. An ack is one message to the server, not waited for (a lost ack
means a redelivery, which consumers deduplicate: at least once); the
client's buffer is flushed when the transport stops. See ``_nats`` for the
broker layout.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lms_shared.events._envelope import EnvelopeLimits
from lms_shared.events._errors import InvalidEvent
from lms_shared.events._nats_binding import message_from_nats
from lms_shared.events._transport import Handler, Message, SubscriptionSpec

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSub

__all__ = ["ConsumerSettings", "NatsDelivery", "NatsSubscription", "describe"]

_STATUS = "Status"
_HEARTBEAT = "100"
_EXPIRED = "408"
_PENDING = "Nats-Pending-Messages"
_ACK_PREFIX = "$JS.ACK."


def describe(exc: BaseException) -> str:
    """``"<Type>: <text>"`` of a driver error, its text cut at 200 characters."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    """What a subscription takes from its transport.

    Attributes:
        stream: the stream of the consumer.
        pull_expires: seconds a pull request lives.
        limits: bounds of incoming messages.
        log: the transport's logger.
        on_unreadable: called for each message terminated as unreadable.
        on_stopped: called with the subscription once it stopped.
    """

    stream: str
    pull_expires: float
    limits: EnvelopeLimits
    log: Any
    on_unreadable: Callable[[], None]
    on_stopped: Callable[[NatsSubscription], None]


class NatsSubscription:
    """One member of a group; see :class:`~lms_shared.events.Subscription`."""

    def __init__(
        self,
        settings: ConsumerSettings,
        nc: Client,
        spec: SubscriptionSpec,
        handler: Handler,
        consumer: str,
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.consumer = consumer
        self._nc = nc
        self._handler = handler
        self._types = frozenset(spec.types)
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{settings.stream}.{consumer}"
        self._expires = int(settings.pull_expires * 1_000_000_000)
        # ask again once this many slots are free beyond the credit (or none is asked)
        self._threshold = max(1, spec.concurrency // 4)
        self._inbox = ""
        self._sub: NatsSub | None = None
        self._requests: deque[tuple[float, int]] = deque()  # open pull requests: deadline, size
        self._credit = 0  # messages the open pull requests may still bring
        self._overflow: deque[NatsDelivery] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_key: dict[str, asyncio.Task[None]] = {}
        self._helpers: set[asyncio.Task[None]] = set()
        self._later: asyncio.TimerHandle | None = None
        self._active = True
        self._stopped = False
        self._log = settings.log.bind(group=spec.group, consumer=consumer)

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        # room for every message the server may send (its max_payload), never a slow consumer
        slots = self.spec.concurrency * 2 + 16
        largest = max(self._nc.max_payload, self.settings.limits.max_bytes) + 64 * 1024
        self._sub = await self._nc.subscribe(
            self._inbox,
            cb=self._on_message,
            pending_msgs_limit=slots,
            pending_bytes_limit=slots * largest,
        )
        self._spawn(self._sweep())
        self._refill()

    # -- pull requests ----------------------------------------------------------

    def _refill(self) -> None:
        """Ask for the free handler slots not covered by credit, in one pull request."""
        if not self._active or not self._nc.is_connected:
            return
        want = self.spec.concurrency - len(self._tasks) - len(self._overflow) - self._credit
        if want <= 0 or (self._credit and want < self._threshold):
            return
        deadline = asyncio.get_running_loop().time() + self.settings.pull_expires
        self._requests.append((deadline, want))
        self._credit += want
        self._spawn(self._pull(want))

    async def _pull(self, count: int) -> None:
        request = b'{"batch":%d,"expires":%d}' % (count, self._expires)
        try:
            await self._nc.publish(self._next_subject, request, reply=self._inbox)
        except Exception as exc:  # the sweep renews what did not go out
            self._log.debug("pull request not sent", error=describe(exc))

    def _received(self, count: int) -> None:
        """``count`` messages of the credit came (or will not come)."""
        self._credit = max(0, self._credit - count)
        if not self._credit:
            self._requests.clear()  # every open request is served or over

    def _ended(self, headers: dict[str, str]) -> None:
        """A pull request ended with a status: take back what it did not bring."""
        if not self._requests:
            self._credit = 0
            return
        _, size = self._requests.popleft()  # which one ended is unknown: the oldest goes
        try:
            left = int(headers.get(_PENDING, size))
        except ValueError:
            left = size
        self._received(left)

    def renew(self) -> None:
        """Forget the open pull requests (reconnected, consumer recreated) and open new ones."""
        self._requests.clear()
        self._credit = 0
        self._refill()

    def _refill_later(self, delay: float = 0.5) -> None:
        if self._later is None and self._active:
            self._later = asyncio.get_running_loop().call_later(delay, self._refill_now)

    def _refill_now(self) -> None:
        self._later = None
        self._refill()

    async def _sweep(self) -> None:
        """Forget pull requests that outlived their expiry unanswered (lost with a leader)."""
        loop = asyncio.get_running_loop()
        grace = max(1.0, self.settings.pull_expires / 2)
        while self._active:
            await asyncio.sleep(min(1.0, self.settings.pull_expires / 2))
            now = loop.time()
            while self._requests and self._requests[0][0] + grace < now:
                _, size = self._requests.popleft()
                self._received(size if self._requests else self._credit)
            self._refill()

    # -- deliveries --------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers
        reply = msg.reply
        if not reply and headers:
            status = headers.get(_STATUS)
            if status is not None:
                if status == _HEARTBEAT:
                    return
                self._ended(headers)
                if status == _EXPIRED:
                    self._refill()
                else:  # consumer deleted, leader changed, too many waiting: not at once
                    self._log.debug("pull request ended", status=status)
                    self._refill_later()
                return
        self._received(1)
        if not self._active:
            return  # left unsettled: delivered again after ack_wait
        position = _position(reply)
        if position is None:
            try:
                metadata = msg.metadata
            except Exception:  # not a JetStream delivery: nothing to settle
                self._log.warning("ignored a message that is not a JetStream delivery")
                self._refill()
                return
            position = metadata.num_delivered, metadata.sequence.stream
        attempt, sequence = position
        try:
            message = message_from_nats(headers, msg.data, limits=self.settings.limits)
        except InvalidEvent as exc:
            self.settings.on_unreadable()
            self._log.error(
                "unreadable message terminated",
                stream_sequence=sequence,
                subject=msg.subject[:200],
                reason=exc.reason,
            )
            await _quietly(msg.term, self._log)
            self._refill()
            return
        if message.type not in self._types:
            await _quietly(msg.ack, self._log)  # the shared filter of an older server
            self._refill()
            return
        delivery = NatsDelivery(msg, message, attempt, sequence)
        if len(self._tasks) < self.spec.concurrency:
            self._run(delivery)
        else:
            self._overflow.append(delivery)

    def _run(self, delivery: NatsDelivery) -> None:
        key = delivery.message.key
        before = self._by_key.get(key) if key is not None else None
        task = asyncio.get_running_loop().create_task(self._handle(delivery, before))
        self._tasks.add(task)
        if key is not None:
            self._by_key[key] = task

    async def _handle(self, delivery: NatsDelivery, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None and not before.done():
                await asyncio.wait([before])  # one key, one handler at a time
            await self._handler(delivery)
        except Exception as exc:
            self._log.warning(
                "event handler failed",
                event_id=delivery.message.id,
                event_type=delivery.message.type,
                attempt=delivery.attempt,
                error=type(exc).__name__,
            )
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
                key = delivery.message.key
                if key is not None and self._by_key.get(key) is task:
                    del self._by_key[key]
            if self._active:
                while self._overflow and len(self._tasks) < self.spec.concurrency:
                    self._run(self._overflow.popleft())
                self._refill()

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    # -- stop ----------------------------------------------------------------------

    async def stop(self, *, drain: bool = True, timeout: float = 30.0) -> None:
        """Stop pulling; with ``drain`` wait up to ``timeout`` s for handlers in flight.

        Deliveries not yet handed to the handler, and those of handlers
        cancelled here, stay unsettled: JetStream delivers them again after
        ``ack_wait`` (to another member, if one is there). The acks sent
        before are flushed to the server (one ping, at most a second).
        """
        if self._stopped:
            return
        self._stopped = True
        self._active = False
        if self._later is not None:
            self._later.cancel()
        for helper in list(self._helpers):
            helper.cancel()
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:  # closed connection: nothing left to undo
                self._log.debug("unsubscribe failed", error=describe(exc))
        self._overflow.clear()
        self._requests.clear()
        self._credit = 0
        running = set(self._tasks)
        if drain and running:
            await asyncio.wait(running, timeout=timeout)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        if self._nc.is_connected:  # the acks sent so far reach the server (one ping)
            try:
                await self._nc.flush(timeout=1)
            except Exception as exc:  # unacked ones are delivered again: at least once
                self._log.debug("flushing the acks failed", error=describe(exc))
        self.settings.on_stopped(self)


class NatsDelivery:
    """One delivery; see :class:`~lms_shared.events.Delivery`."""

    __slots__ = ("_attempt", "_message", "_msg", "_position", "settled")

    def __init__(self, msg: Msg, message: Message, attempt: int, position: int) -> None:
        self._msg = msg
        self._message = message
        self._attempt = attempt
        self._position = str(position)
        self.settled = False

    @property
    def message(self) -> Message:
        """The delivered message."""
        return self._message

    @property
    def attempt(self) -> int:
        """JetStream's delivery count of the message for this consumer."""
        return self._attempt

    @property
    def position(self) -> str:
        """The stream sequence of the message."""
        return self._position

    async def ack(self) -> None:
        """Settle: the consumer never delivers this message again (a lost ack redelivers)."""
        if not self.settled:
            self.settled = True
            await _quietly(self._msg.ack, None)

    async def retry(self, delay: float) -> None:
        """Settle with a delayed ``NAK``: JetStream delivers again after ``delay`` s."""
        if delay < 0:
            raise ValueError("retry delay must not be negative")
        if not self.settled:
            self.settled = True
            msg = self._msg
            await _quietly(lambda: msg.nak(delay=delay or None), None)


def _position(reply: str) -> tuple[int, int] | None:
    """Delivery count and stream sequence from a JetStream ack subject (``None``: another form).

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>``;
    the longer forms (with a domain and an account) are left to nats-py.
    """
    if not reply.startswith(_ACK_PREFIX):
        return None
    tokens = reply.split(".")
    if len(tokens) != 9:
        return None
    try:
        return int(tokens[4]), int(tokens[5])
    except ValueError:
        return None


async def _quietly(settle: Callable[[], Awaitable[None]], log: Any) -> None:
    """Send an ack, nak or term; when the connection is gone the broker redelivers anyway."""
    try:
        await settle()
    except Exception as exc:
        if log is not None:
            log.debug("settling failed", error=describe(exc))
