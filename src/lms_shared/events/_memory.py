"""The in-memory transport: one process, for tests and as the bus's test double.

It implements :class:`~lms_shared.events.Transport` fully (groups, fan-out,
``ack_wait`` redelivery, delayed retries, bounded history and rewind) on
the injected clock, so a test drives redelivery and retry delays with a
``ManualClock`` and no real waiting. It passes the same conformance suite
as the broker transports.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count

from lms_shared.clock import Clock, SystemClock
from lms_shared.events._errors import PublishFailed, TransportUnavailable
from lms_shared.events._transport import Handler, Message, SubscriptionSpec
from lms_shared.observability import get_logger

__all__ = ["MemoryTransport"]


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    message: Message
    stored: datetime


@dataclass(frozen=True, slots=True)
class _Item:
    entry: _Entry
    attempt: int


@dataclass(eq=False, slots=True)
class _Group:
    name: str
    types: set[str] = field(default_factory=set)
    ready: deque[_Item] = field(default_factory=deque)
    subscriptions: list[_MemorySubscription] = field(default_factory=list)
    turn: int = 0


class MemoryTransport:
    """A :class:`~lms_shared.events.Transport` that lives in this process.

    Args:
        clock: the clock that times ``ack_wait``, retry delays and history.
        name: the transport's name.
        max_history: how many published messages are kept for :meth:`rewind`
            (the oldest are dropped first).

    Attributes:
        reachable: set it to ``False`` to simulate a broker outage: ``start``,
            ``ping`` and ``subscribe`` raise :class:`TransportUnavailable`,
            ``publish`` raises :class:`PublishFailed`. Deliveries in flight go on.
        published: every message published, in order (bounded by ``max_history``).
    """

    keeps_history = True
    native_delay = True

    def __init__(
        self, clock: Clock | None = None, *, name: str = "memory", max_history: int = 100_000
    ) -> None:
        if max_history < 1:
            raise ValueError("max_history must be at least 1")
        self.name = name
        self.clock: Clock = clock or SystemClock()
        self.reachable = True
        self._history: deque[_Entry] = deque(maxlen=max_history)
        self._groups: dict[str, _Group] = {}
        self._seq = count(1)
        self._started = False
        self._unsettled: set[_MemoryDelivery] = set()
        self._delayed: dict[asyncio.Task[None], tuple[_Group, _Item]] = {}
        self._log = get_logger("lms.events.memory")

    @property
    def published(self) -> list[Message]:
        """The retained published messages, oldest first."""
        return [entry.message for entry in self._history]

    async def start(self) -> None:
        """Start accepting publishes and subscriptions (idempotent).

        Raises:
            TransportUnavailable: :attr:`reachable` is false.
        """
        self._check_reachable()
        self._started = True
        for group in self._groups.values():
            self._dispatch(group)

    async def stop(self) -> None:
        """Stop every subscription without draining; unsettled messages wait for a restart."""
        self._started = False
        for group in self._groups.values():
            for subscription in list(group.subscriptions):
                await subscription.stop(drain=False)
        for delivery in list(self._unsettled):
            delivery.release()
        for task, (group, item) in list(self._delayed.items()):
            task.cancel()
            group.ready.appendleft(item)
        self._delayed.clear()

    async def ping(self) -> None:
        """Raises :class:`TransportUnavailable` when stopped or unreachable."""
        self._check_reachable()
        if not self._started:
            raise TransportUnavailable("memory transport is not started")

    async def publish(self, messages: Sequence[Message]) -> None:
        """Append the messages to the history and to every group that takes their type.

        Raises:
            PublishFailed: stopped or unreachable; nothing is stored.
        """
        if not self.reachable:
            raise PublishFailed("memory transport is unreachable")
        if not self._started:
            raise PublishFailed("memory transport is not started")
        touched: set[str] = set()
        now = self.clock.now()
        for message in messages:
            entry = _Entry(next(self._seq), message, now)
            self._history.append(entry)
            for group in self._groups.values():
                if message.type in group.types:
                    group.ready.append(_Item(entry, 1))
                    touched.add(group.name)
        for name in touched:
            self._dispatch(self._groups[name])

    async def subscribe(self, spec: SubscriptionSpec, handler: Handler) -> _MemorySubscription:
        """Join (or create) ``spec.group`` and start delivering to ``handler``.

        Raises:
            TransportUnavailable: stopped or unreachable.
        """
        await self.ping()
        group = self._groups.setdefault(spec.group, _Group(spec.group))
        group.types.update(spec.types)
        subscription = _MemorySubscription(self, group, spec, handler)
        group.subscriptions.append(subscription)
        self._dispatch(group)
        return subscription

    async def rewind(
        self,
        group: str,
        types: Sequence[str],
        *,
        since: datetime | None = None,
        position: str | None = None,
    ) -> None:
        """Queue the retained events of ``types`` from a point on for ``group`` again.

        Raises:
            ValueError: both ``since`` and ``position`` given, or a
                ``position`` that is not a sequence number.
        """
        if since is not None and position is not None:
            raise ValueError("give since or position, not both")
        start = 0
        if position is not None:
            if not position.isdigit():
                raise ValueError(f"{position!r} is not a memory transport position")
            start = int(position)
        wanted = set(types)
        state = self._groups.setdefault(group, _Group(group))

        def replayed(entry: _Entry) -> bool:
            return (
                entry.message.type in wanted
                and entry.seq >= start
                and (since is None or entry.stored >= since)
            )

        kept = [item for item in state.ready if not replayed(item.entry)]
        again = [_Item(entry, 1) for entry in self._history if replayed(entry)]
        state.ready = deque(kept + again)
        self._dispatch(state)

    def _check_reachable(self) -> None:
        if not self.reachable:
            raise TransportUnavailable("memory transport is unreachable")

    def _dispatch(self, group: _Group) -> None:
        """Hand ready items to subscriptions with free capacity, round robin."""
        if not self._started or not group.ready:
            return
        kept: deque[_Item] = deque()
        while group.ready:
            free = [s for s in group.subscriptions if s.has_capacity]
            if not free:
                break
            item = group.ready.popleft()
            takers = [s for s in free if item.entry.message.type in s.spec.types]
            if not takers:
                kept.append(item)
                continue
            group.turn += 1
            takers[group.turn % len(takers)].deliver(item)
        kept.extend(group.ready)
        group.ready = kept

    def _requeue(self, group: _Group, item: _Item, delay: float = 0.0) -> None:
        if delay <= 0:
            group.ready.appendleft(item)
            self._dispatch(group)
            return
        task = asyncio.get_running_loop().create_task(self._after(group, item, delay))
        self._delayed[task] = (group, item)

    async def _after(self, group: _Group, item: _Item, delay: float) -> None:
        await self.clock.sleep(delay)
        task = asyncio.current_task()
        if task is not None:
            self._delayed.pop(task, None)
        group.ready.appendleft(item)
        self._dispatch(group)


class _MemorySubscription:
    """One member of a group; see :class:`~lms_shared.events.Subscription`."""

    def __init__(
        self, transport: MemoryTransport, group: _Group, spec: SubscriptionSpec, handler: Handler
    ) -> None:
        self.transport = transport
        self.group = group
        self.spec = spec
        self.handler = handler
        self.active = True
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def has_capacity(self) -> bool:
        return self.active and len(self.tasks) < self.spec.concurrency

    def deliver(self, item: _Item) -> None:
        delivery = _MemoryDelivery(self.transport, self.group, item)
        loop = asyncio.get_running_loop()
        delivery.timer = loop.create_task(delivery.expire(self.spec.ack_wait))
        task = loop.create_task(self._run(delivery))
        self.tasks.add(task)

    async def _run(self, delivery: _MemoryDelivery) -> None:
        try:
            await self.handler(delivery)
        except Exception as exc:
            self.transport._log.warning(
                "event handler failed",
                group=self.spec.group,
                event_id=delivery.message.id,
                event_type=delivery.message.type,
                attempt=delivery.attempt,
                error=type(exc).__name__,
            )
        finally:
            task = asyncio.current_task()
            if task is not None:
                self.tasks.discard(task)
            self.transport._dispatch(self.group)

    async def stop(self, *, drain: bool = True, timeout: float = 30.0) -> None:
        """Stop taking deliveries; with ``drain`` wait up to ``timeout`` for handlers."""
        if self.active:
            self.active = False
            if self in self.group.subscriptions:
                self.group.subscriptions.remove(self)
        running = set(self.tasks)
        if drain and running:
            clock = self.transport.clock
            timer = asyncio.get_running_loop().create_task(clock.sleep(timeout))
            try:
                await asyncio.wait([*running, timer], return_when=asyncio.FIRST_COMPLETED)
                while not timer.done() and (left := {t for t in running if not t.done()}):
                    await asyncio.wait([*left, timer], return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        self.transport._dispatch(self.group)


class _MemoryDelivery:
    """One delivery; see :class:`~lms_shared.events.Delivery`."""

    def __init__(self, transport: MemoryTransport, group: _Group, item: _Item) -> None:
        self._transport = transport
        self._group = group
        self._item = item
        self.timer: asyncio.Task[None] | None = None
        self.settled = False
        transport._unsettled.add(self)

    @property
    def message(self) -> Message:
        """The delivered message."""
        return self._item.entry.message

    @property
    def attempt(self) -> int:
        """1 on the first delivery, one more per redelivery."""
        return self._item.attempt

    @property
    def position(self) -> str:
        """The message's sequence number in the transport's history."""
        return str(self._item.entry.seq)

    async def ack(self) -> None:
        """Settle: the group never gets this delivery again."""
        self._settle()

    async def retry(self, delay: float) -> None:
        """Settle, and deliver again after ``delay`` seconds of the clock."""
        if delay < 0:
            raise ValueError("retry delay must not be negative")
        if self._settle():
            self._transport._requeue(self._group, self._next(), delay)

    async def expire(self, ack_wait: float) -> None:
        await self._transport.clock.sleep(ack_wait)
        self.timer = None
        if self._settle():
            self._transport._requeue(self._group, self._next())

    def release(self) -> None:
        """The transport stops: put the message back for the next start."""
        if self._settle():
            self._group.ready.appendleft(self._next())

    def _next(self) -> _Item:
        return _Item(self._item.entry, self._item.attempt + 1)

    def _settle(self) -> bool:
        if self.settled:
            return False
        self.settled = True
        self._transport._unsettled.discard(self)
        if self.timer is not None and self.timer is not asyncio.current_task():
            self.timer.cancel()
        self.timer = None
        return True
