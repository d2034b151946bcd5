"""The event bus's test double: a bus in memory, what it published, what became of it.

::

    bus = memory_bus(clock=ManualClock())          # MemoryTransport, memory inbox and DLQ
    events = EventRecorder(bus)                     # or EventRecorder(service.events)
    await bus.start()
    await bus.publish(CoursePublished(...))
    assert events.published(CoursePublished)[0].title == "Rust"
    outcomes = await events.deliver(EnrollmentCreated(...))   # publish, wait for the handlers
    assert [o.result for o in outcomes] == ["handled"]

A service under test gets the same transport with ``LMS_EVENTS_URL=memory://``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from lms_shared.clock import Clock, SystemClock
from lms_shared.events import (
    Event,
    EventBus,
    MemoryDeadLetterStore,
    MemoryInbox,
    MemoryTransport,
    Outcome,
    RetryPolicy,
    from_message,
)

__all__ = ["EventRecorder", "memory_bus"]

E = TypeVar("E", bound=Event)

FINAL = frozenset({"handled", "duplicate", "dead", "skipped"})
"""Results after which a group is done with a delivery."""


def memory_bus(
    *,
    clock: Clock | None = None,
    source: str = "/tests",
    group: str = "tests",
    retry: RetryPolicy | None = None,
    inbox: bool = True,
) -> EventBus:
    """A bus on a :class:`~lms_shared.events.MemoryTransport`, with memory inbox and dead letters.

    Args:
        clock: drives retry delays and redelivery (a ``ManualClock`` in tests).
        source: the bus's CloudEvents ``source``.
        group: its default subscription group.
        retry: the default retry policy.
        inbox: deduplicate with a :class:`~lms_shared.events.MemoryInbox`.
    """
    clock = clock or SystemClock()
    return EventBus(
        MemoryTransport(clock),
        source=source,
        group=group,
        clock=clock,
        retry=retry,
        inbox=MemoryInbox() if inbox else None,
        dead_letters=MemoryDeadLetterStore(),
    )


class EventRecorder:
    """Records every :class:`~lms_shared.events.Outcome` of a bus and waits for them.

    Args:
        bus: the bus to watch (observed from now on).
        timeout: the most real seconds a wait takes before it fails (a
            bound for a stuck test, never a measurement).

    Attributes:
        outcomes: every outcome, in order.
    """

    def __init__(self, bus: EventBus, *, timeout: float = 10.0) -> None:
        self.bus = bus
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._changed = asyncio.Event()
        bus.observe(self._record)

    def _record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self._changed.set()

    def published(self, event_class: type[E] | None = None) -> list[E]:
        """The events published through the bus's memory transport, decoded, oldest first.

        Args:
            event_class: only events of this class (by type); all when omitted.

        Raises:
            TypeError: the bus's transport is not a ``MemoryTransport``.
        """
        transport = self.bus.transport
        if not isinstance(transport, MemoryTransport):
            raise TypeError("published() reads a MemoryTransport: set LMS_EVENTS_URL=memory://")
        wanted = event_class.event_type() if event_class is not None else None
        found: list[E] = []
        for message in transport.published:
            if wanted is not None and message.type != wanted:
                continue
            if message.type not in self.bus.registry:
                continue
            event = self.bus.registry.decode(from_message(message))
            found.append(event)  # type: ignore[arg-type]
        return found

    def for_event(self, event_id: str) -> list[Outcome]:
        """The outcomes of one event id, in order."""
        return [o for o in self.outcomes if o.event_id == event_id]

    async def wait_for(self, predicate: Callable[[list[Outcome]], bool]) -> list[Outcome]:
        """Wait until ``predicate(outcomes)`` holds; returns the outcomes.

        Raises:
            AssertionError: it did not hold within ``timeout`` real seconds.
        """
        try:
            async with asyncio.timeout(self.timeout):
                while not predicate(self.outcomes):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"the bus did not reach the expected outcomes within {self.timeout:g}s; "
                f"it reached: {[(o.event_type, o.group, o.result) for o in self.outcomes]}"
            ) from None
        return list(self.outcomes)

    async def settled(self, event_id: str, *, groups: int = 1) -> list[Outcome]:
        """Wait until ``groups`` groups are done with ``event_id`` (handled, dead, ...)."""

        def done(outcomes: list[Outcome]) -> bool:
            return (
                len({o.group for o in outcomes if o.event_id == event_id and o.result in FINAL})
                >= groups
            )

        await self.wait_for(done)
        return self.for_event(event_id)

    async def deliver(
        self,
        event: Event,
        *,
        key: str | None = None,
        tenant: str | None = None,
        deadline: datetime | timedelta | None = None,
    ) -> list[Outcome]:
        """Publish ``event`` through the bus and wait until every group subscribed to it is done.

        Returns:
            The event's outcomes (retries included, in order). An event no
            group takes returns at once with none.
        """
        cloud_event = await self.bus.publish(event, key=key, tenant=tenant, deadline=deadline)
        groups = sum(
            1 for group in self.bus.groups if cloud_event.type in self.bus.group_types(group)
        )
        if groups:
            await self.settled(cloud_event.id, groups=groups)
        return self.for_event(cloud_event.id)
