"""The transactional outbox: events written with the state change, published after commit.

``await bus.publish(event, outbox=tx)`` writes the event (its trace context
and every other attribute already stamped) into an outbox table *in the
transaction* ``tx``, so the event exists exactly when the change does: a
rolled-back transaction leaves no event behind, a committed one cannot
lose its event. The :class:`OutboxRelay` then publishes the rows in order
and deletes them only once the transport confirmed them; a relay that
crashes between the two publishes those rows again (at least once:
consumers deduplicate by event id in their inbox).

The relay is woken by the commit itself (the store hooks the session's
``after_commit``), not by a poll loop; a slow sweep (every 30 s by
default) picks up rows another process committed, or rows left when the
broker was down. While publishing fails it backs off (full jitter) and
ignores wake-ups, so a down broker is not hammered once per commit.
A store may publish the rows its own process committed straight from
memory (:class:`~lms_shared.events.sql.SqlOutbox` does): the relay then
has it read its table at start, at every sweep and on :meth:`flush`
(its optional ``rescan()``), where rows of other processes wait.
While it is busy it keeps one database connection (a store's optional
``hold()``, as :class:`~lms_shared.events.sql.SqlOutbox` has), so a cycle
costs no pool checkout; it gives it back after ``linger`` seconds without
a commit, when publishing fails, and when it stops.

``SqlOutbox`` in :mod:`lms_shared.events.sql` is the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from lms_shared.clock import Clock
from lms_shared.events._transport import Message, Transport
from lms_shared.observability import get_logger
from lms_shared.resilience import Backoff

__all__ = ["OutboxRelay", "OutboxStore", "Publish"]

Publish = Callable[[Sequence[Message]], Awaitable[None]]
"""Publishes messages and returns once the broker confirmed each (``Transport.publish``)."""


@runtime_checkable
class OutboxStore(Protocol):
    """Where outbox rows wait for the relay."""

    async def add(
        self, tx: Any, messages: Sequence[Message], *, on_commit: Callable[[], None]
    ) -> None:
        """Write ``messages`` in the caller's transaction ``tx``.

        ``on_commit`` is called (synchronously, on the event loop) when that
        transaction commits; never when it rolls back.

        Raises:
            TypeError: ``tx`` is not a unit of work this store writes through.
        """
        ...

    async def relay(self, publish: Publish, *, limit: int) -> int:
        """Publish the oldest pending rows (at most ``limit``), then delete them.

        Rows are deleted only after ``publish`` returned. Returns how many
        were published (0: nothing pending).

        Raises:
            PublishFailed: the broker did not confirm (the rows stay).
        """
        ...

    async def pending(self) -> int:
        """How many rows wait to be published."""
        ...


class OutboxRelay:
    """Publishes an outbox's rows through a transport, woken on commit.

    Args:
        store: the outbox.
        transport: publishes (it must be started before the relay).
        clock: sweeps and backoff sleep on it.
        batch: rows per publish.
        sweep: seconds between sweeps when nothing woke the relay.
        linger: seconds the relay keeps its held connection (see the
            store's ``hold()``) without a commit waking it.
        backoff: the delays after failed publishes (full jitter).
        random: the jitter's source of floats in ``[0, 1)``.

    Attributes:
        failures: publishes that failed in a row (0 when healthy).
        last_error: why the last publish failed, while ``failures`` > 0.
        published: rows published since the relay was made.
    """

    def __init__(
        self,
        store: OutboxStore,
        transport: Transport,
        *,
        clock: Clock,
        batch: int = 100,
        sweep: float = 30.0,
        linger: float = 1.0,
        backoff: Backoff | None = None,
        random: Callable[[], float] = random.random,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if not sweep > 0:
            raise ValueError("sweep must be positive")
        if not 0 < linger <= sweep:
            raise ValueError("linger must be positive and at most sweep")
        self.store = store
        self.transport = transport
        self.clock = clock
        self.batch = batch
        self.sweep = sweep
        self.linger = linger
        self.backoff = backoff or Backoff(initial=0.1, maximum=30.0)
        self.random = random
        self.failures = 0
        self.last_error: str | None = None
        self.failing_since: datetime | None = None
        self.published = 0
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop = asyncio.Event()
        self._waiter: asyncio.Future[bool] | None = None
        self._held = contextlib.AsyncExitStack()
        self._holding = False
        self._log = get_logger("lms.events.outbox")

    @property
    def running(self) -> bool:
        """Whether the relay's loop is running."""
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Publish soon: a transaction with outbox rows committed."""
        self._wakeup.set()
        self._resume(True)

    def _resume(self, early: bool) -> None:
        """Resume the relay's :meth:`_nap`, if it is in one (``early``: not the timer)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(early)

    async def flush(self) -> int:
        """Publish every pending row now, the table read too; returns how many.

        Raises:
            PublishFailed: the broker did not confirm (the rows stay).
        """
        self._rescan()
        return await self._publish_pending()

    def _rescan(self) -> None:
        """Have a store that publishes its own commits from memory read its table next."""
        rescan = getattr(self.store, "rescan", None)
        if rescan is not None:
            rescan()

    async def _publish_pending(self) -> int:
        total = 0
        async with self._lock:
            while True:
                count = await self.store.relay(self.transport.publish, limit=self.batch)
                total += count
                self.published += count
                if count < self.batch:
                    return total

    async def start(self) -> None:
        """Start the loop (idempotent); it publishes what is pending at once."""
        if self.running:
            return
        self._stopping = False
        self._stop.clear()
        self._wakeup.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox-relay")

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Publish what is pending (for up to ``timeout`` seconds), then stop the loop.

        Rows still pending stay in the outbox for the next start.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._rescan()  # the last publish reads the table too
        self._stop.set()
        self._resume(True)
        sleeper = asyncio.get_running_loop().create_task(self.clock.sleep(timeout))
        try:
            await asyncio.wait({task, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, sleeper, return_exceptions=True)

    async def _run(self) -> None:
        try:
            await self._loop()
        finally:
            await self._release()

    async def _loop(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self._hold()
                await self._publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker, the database: retry after a backoff
                await self._release()
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                if self.failing_since is None:
                    self.failing_since = self.clock.now()
                if self._stopping:
                    return
                delay = self.backoff.delay(self.failures, self.random)
                self._log.warning(
                    "outbox relay failed",
                    error=self.last_error,
                    failures=self.failures,
                    retry_in=round(delay, 3),
                )
                await self._backoff(delay)
                continue
            if self.failures:
                self._log.info("outbox relay recovered", failures=self.failures)
            self.failures, self.last_error, self.failing_since = 0, None, None
            if self._stopping:
                return
            if await self._nap(self.linger):
                continue  # a commit (or stop) came while the connection was held
            await self._release()
            if not await self._nap(self.sweep - self.linger):
                self._rescan()  # the sweep: rows of other processes, of crashed runs

    async def _hold(self) -> None:
        hold = getattr(self.store, "hold", None)
        if hold is None or self._holding:
            return
        await self._held.enter_async_context(hold())
        self._holding = True

    async def _release(self) -> None:
        if self._holding:
            async with self._lock:  # not under a flush() of someone else's
                self._holding = False
                await self._held.aclose()

    async def _nap(self, seconds: float) -> bool:
        """Wait for a commit, a stop or ``seconds``; True when a commit or stop ended it.

        The relay's own task awaits one future that a commit (:meth:`wake`),
        :meth:`stop` or the timer resolves, so a commit resumes it in one
        step of the event loop (each step also runs whatever else is ready:
        under load, part of every event's commit-to-broker latency).
        """
        if self._wakeup.is_set() or self._stop.is_set():
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = loop.create_task(self.clock.sleep(seconds))

        def rang(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and not waiter.done():
                waiter.set_result(False)

        timer.add_done_callback(rang)
        self._waiter = waiter
        try:
            return await waiter
        finally:
            self._waiter = None
            timer.cancel()

    async def _backoff(self, seconds: float) -> None:
        """Wait ``seconds`` after a failure; a stop ends it early, a commit does not."""
        loop = asyncio.get_running_loop()
        timer = loop.create_task(self.clock.sleep(seconds))
        waiters: list[asyncio.Task[Any]] = [timer, loop.create_task(self._stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
