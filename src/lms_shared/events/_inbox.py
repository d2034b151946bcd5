"""The inbox: each event's effect happens once per group, however often it is delivered.

Delivery is at least once (a crashed consumer, an ack lost on the way, a
relay that published twice), so a group may see one event again. The bus
runs every handler inside :meth:`Inbox.process`: it says whether the group
has handled the event's id already (the bus then acks it unseen), and when
the handler succeeds it records the id *in the same transaction* as the
handler's own database work, so effect and record commit together or not
at all. Two deliveries racing each other are settled by the record: the
second one's insert finds the first one's row, its transaction is rolled
back (its database effects with it) and :class:`DuplicateDelivery` tells
the bus to ack it as a duplicate.

:class:`MemoryInbox` is here (tests, one process); ``SqlInbox`` in
:mod:`lms_shared.events.sql` keeps the records in the service's database.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from lms_shared.events._errors import EventError

__all__ = ["DuplicateDelivery", "Inbox", "InboxEntry", "MemoryInbox"]


class DuplicateDelivery(EventError):
    """Another delivery of the event recorded it first; this one's work was rolled back."""

    def __init__(self, group: str, event_id: str) -> None:
        self.reason = f"group {group!r} has already handled event {event_id!r}"
        self.group = group
        self.event_id = event_id
        super().__init__(self.reason)


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """What :meth:`Inbox.process` found.

    Attributes:
        duplicate: the group handled this event already: do nothing.
        tx: the unit of work the record is written in, for the handler's
            own changes (an ``AsyncSession`` for ``SqlInbox``; ``None`` for
            :class:`MemoryInbox`).
    """

    duplicate: bool
    tx: Any = None


@runtime_checkable
class Inbox(Protocol):
    """Records which events each group has handled."""

    def process(
        self, group: str, event_id: str, *, tenant: str | None = None
    ) -> AbstractAsyncContextManager[InboxEntry]:
        """Open a unit of work for handling one event.

        Entering says whether the event is a duplicate. Leaving the block
        without an error records ``(group, event_id)`` and commits; leaving
        it with an error rolls back (nothing recorded, the handler's changes
        undone).

        Args:
            group: the subscription group.
            event_id: the event's ``id``.
            tenant: the event's tenant, for a tenant-scoped unit of work.

        Raises:
            DuplicateDelivery: on leaving: another delivery recorded the
                event meanwhile; this unit of work was rolled back.
        """
        ...


class MemoryInbox:
    """Handled event ids in this process (tests, the test double).

    Args:
        max_entries: how many ids are remembered; the oldest are forgotten
            first (an event redelivered after that is handled again).
    """

    def __init__(self, *, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._handled: OrderedDict[tuple[str, str], None] = OrderedDict()

    def handled(self, group: str, event_id: str) -> bool:
        """Whether ``group`` has handled ``event_id``."""
        return (group, event_id) in self._handled

    def __len__(self) -> int:
        return len(self._handled)

    def process(
        self, group: str, event_id: str, *, tenant: str | None = None
    ) -> AbstractAsyncContextManager[InboxEntry]:
        """See :meth:`Inbox.process` (``tx`` is ``None``)."""
        return self._process(group, event_id)

    @asynccontextmanager
    async def _process(self, group: str, event_id: str) -> AsyncIterator[InboxEntry]:
        key = (group, event_id)
        if key in self._handled:
            yield InboxEntry(duplicate=True)
            return
        yield InboxEntry(duplicate=False)
        if key in self._handled:
            raise DuplicateDelivery(group, event_id)
        self._handled[key] = None
        while len(self._handled) > self.max_entries:
            self._handled.popitem(last=False)
