"""The embedded event log: a durable log broker in one SQLite file, for one machine.

Unset, ``LMS_EVENTS_URL`` means this transport: every process of the
machine (the demo's services, a CLI replaying dead letters) opens the same
file, ``<state_dir>/events.sqlite3``, and they behave as clients of one
broker:

* **Append-only log.** Each published event is a row with a position that
  only grows (an ``AUTOINCREMENT`` rowid, never reused), so
  ``keeps_history`` is true and :meth:`LogTransport.rewind` re-delivers a
  group's events from a time or a position.
* **Groups across processes.** A group is a durable queue of pending rows
  (filled at publish, in the same transaction, for every group that takes
  the type). Competing members, in any process, lease rows in write
  transactions, so each row goes to one of them; a lease is a visibility
  timeout (``ack_wait``): when its holder dies the row becomes visible
  again and another member gets it with ``attempt`` one higher. Ack
  deletes the row after the handler; :meth:`Delivery.retry` makes it
  visible again after the delay (``native_delay``: the due time is a
  column, no republish). A group keeps receiving while its processes are
  down and starts, like every group, at the end of the log.
* **Order per key.** Within a group, a row with a ``partitionkey`` is not
  handed out while an earlier row of the same key is pending (leased,
  delayed or waiting) or another row of the key is leased: one key, one
  delivery at a time, in publish order, even across processes. Keyless
  rows are handed out oldest first, as many at a time as members take.
* **Retention.** Events older than ``max_age`` seconds or beyond the
  newest ``max_rows`` are deleted (every ``retention_interval`` seconds,
  and by :meth:`LogTransport.trim`), pending deliveries of groups that
  had not acked them included: that is logged as a warning, never silent.
* **Bounded reads.** Rows are read back within :class:`EnvelopeLimits`
  (size checked in SQL before the blob is fetched, flat attributes, a
  valid :class:`Message`); a row that is not (a corrupt file, another
  writer) is taken out of its group and listed by
  :meth:`LogTransport.rejected` with the reason, and
  :meth:`LogTransport.read` raises :class:`StoredEventUnreadable`: the
  consumer never crashes on it.

Durability: WAL with ``synchronous=NORMAL`` by default, so a confirmed
publish survives a crashed or killed process (the log's failure model on
one machine) but the last transactions may be lost on a power cut;
``?synchronous=full`` adds an fsync per commit. The file must be on a
local disk: WAL needs shared memory, which network file systems lack.

**Wake-ups.** SQLite has no cross-process notification, so a poller reads
``PRAGMA data_version`` (it changes when *another* connection committed:
one shared-memory read, no table read) every 5 ms while something changes
and backs off, doubling, to 250 ms when idle (``poll_min``/``poll_max``);
a change wakes every subscription to claim. Publishes, acks and retries
of the *same* process wake its subscriptions at once through an asyncio
event, with no polling delay; lease expiries and retry delays wake a
subscription at the earliest due time the claim query returns.

**Why stdlib sqlite3 on one worker thread**, not aiosqlite or SQLAlchemy:
every statement of the log runs on one dedicated thread that owns the
connection, and the transport batches whatever is queued (publishes, acks
of many handlers, claims of several subscriptions) into *one* write
transaction per thread hop (group commit), each piece in a savepoint.
That batching is where the throughput comes from, and neither library
offers it: aiosqlite is a thread and a queue per connection with one
hop per statement; SQLAlchemy adds a pool, an ORM layer and about half a
second of import (``sqlalchemy.ext.asyncio``, measured here; ``sqlite3``
takes 10 ms) to a module every service imports, so it stays out of the
events' import path (a test checks).
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qsl

from lms_shared.clock import Clock, SystemClock
from lms_shared.errors import SettingsError
from lms_shared.events._envelope import DEFAULT_LIMITS, EnvelopeLimits
from lms_shared.events._errors import PublishFailed, TransportUnavailable
from lms_shared.events._log_store import (
    Claimed,
    LogStore,
    RejectedEntry,
    StoredEventUnreadable,
    encode,
)
from lms_shared.events._transport import Handler, Message, SubscriptionSpec
from lms_shared.observability import get_logger

__all__ = [
    "DEFAULT_FILE",
    "LogOptions",
    "LogTransport",
    "RejectedEntry",
    "StoredEventUnreadable",
]

T = TypeVar("T")

DEFAULT_FILE = "events.sqlite3"
"""The log's file name under the state folder."""

_DB_ERRORS = (sqlite3.Error, OSError)
_MAX_POSITION_DIGITS = 19  # a signed 64-bit rowid
_PRUNE_UNSETTLED = 4096  # unsettled deliveries kept before expired ones are forgotten


class LogOptions(Protocol):
    """What :meth:`LogTransport.from_url` reads of the transport factory's options."""

    @property
    def clock(self) -> Clock:
        """The service's clock."""
        ...

    @property
    def state_dir(self) -> Path:
        """The folder of the embedded backends."""
        ...


async def _wait(event: asyncio.Event, clock: Clock, seconds: float | None) -> None:
    """Return when ``event`` is set or ``seconds`` of ``clock`` have passed."""
    if event.is_set() or (seconds is not None and seconds <= 0):
        return
    tasks: set[asyncio.Task[Any]] = {asyncio.ensure_future(event.wait())}
    if seconds is not None:
        tasks.add(asyncio.ensure_future(clock.sleep(seconds)))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class LogTransport:
    """A :class:`~lms_shared.events.Transport` on one SQLite file shared by a machine.

    Nothing is opened before :meth:`start`.

    Args:
        path: the SQLite file (created with its folder at start).
        clock: wall time of leases, retry delays and retention (every
            process of the machine reads the same wall clock), and the
            sleeps of polling.
        max_age: seconds an event is retained (``None``: no age limit).
        max_rows: most events retained (``None``: no count limit).
        retention_interval: seconds between retention passes.
        busy_timeout: seconds to wait for another process's write lock.
        synchronous: ``normal`` (survives crashed processes) or ``full``
            (also power cuts, an fsync per commit).
        poll_min: seconds between polls for other processes' writes while
            they keep coming.
        poll_max: seconds between polls when idle.
        limits: bounds of a published event and of a stored one read back
            (``max_bytes`` of attributes and data, ``max_attributes``).

    Raises:
        ValueError: an argument is out of range.
    """

    name = "sqlite"
    keeps_history = True
    native_delay = True

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Clock | None = None,
        max_age: float | None = 7 * 24 * 3600.0,
        max_rows: int | None = 1_000_000,
        retention_interval: float = 60.0,
        busy_timeout: float = 5.0,
        synchronous: Literal["normal", "full"] = "normal",
        poll_min: float = 0.005,
        poll_max: float = 0.25,
        limits: EnvelopeLimits = DEFAULT_LIMITS,
    ) -> None:
        if max_age is not None and not max_age > 0:
            raise ValueError("max_age must be positive (or None)")
        if max_rows is not None and max_rows < 1:
            raise ValueError("max_rows must be at least 1 (or None)")
        if not retention_interval > 0:
            raise ValueError("retention_interval must be positive")
        if not 0 < busy_timeout <= 3600:
            raise ValueError("busy_timeout must be in (0, 3600] seconds")
        if synchronous not in ("normal", "full"):
            raise ValueError("synchronous must be 'normal' or 'full'")
        if not 0 < poll_min <= poll_max <= 60:
            raise ValueError("need 0 < poll_min <= poll_max <= 60 seconds")
        self.path = Path(path)
        self.clock: Clock = clock or SystemClock()
        self.max_age = max_age
        self.max_rows = max_rows
        self.retention_interval = retention_interval
        self.poll_min = poll_min
        self.poll_max = poll_max
        self.limits = limits
        self._store = LogStore(
            self.path,
            busy_timeout=busy_timeout,
            synchronous=synchronous.upper(),
            limits=limits,
        )
        self._pool: ThreadPoolExecutor | None = None
        self._started = False
        self._stopping = asyncio.Event()
        self._subscriptions: set[_LogSubscription] = set()
        self._unsettled: set[_LogDelivery] = set()
        self._queue: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._log = get_logger("lms.events.log", path=str(self.path))

    @classmethod
    def from_state_dir(
        cls, state_dir: Path | str, *, clock: Clock | None = None, **options: Any
    ) -> LogTransport:
        """The machine's log, ``<state_dir>/events.sqlite3`` (``LMS_STATE_DIR``).

        ``options`` are the keyword arguments of the constructor.
        """
        return cls(Path(state_dir) / DEFAULT_FILE, clock=clock, **options)

    @classmethod
    def from_url(
        cls,
        url: str | None,
        options: LogOptions | None = None,
        /,
        *,
        clock: Clock | None = None,
        state_dir: Path | str | None = None,
    ) -> LogTransport:
        """The log an ``LMS_EVENTS_URL`` of scheme ``sqlite`` names.

        Paths follow SQLAlchemy's ``sqlite`` URLs (as ``LMS_DATABASE_URL``
        does): ``sqlite://`` (or no URL) is ``<state_dir>/events.sqlite3``,
        ``sqlite:///.lms/events.sqlite3`` a path relative to the working
        folder, ``sqlite:////var/lib/lms/events.sqlite3`` (four slashes) an
        absolute one. Query options: ``max_age`` (seconds, ``none`` for no
        limit), ``max_rows`` (a count or ``none``), ``retention_interval``,
        ``busy_timeout``, ``poll_min``, ``poll_max`` (seconds),
        ``synchronous`` (``normal`` or ``full``).

        Args:
            url: the URL.
            options: the transport factory's options (their ``clock`` and
                ``state_dir``), for :func:`transport_from_url`.
            clock: the clock, instead of ``options.clock``.
            state_dir: the state folder, instead of ``options.state_dir``
                (default ``.lms``).

        Raises:
            SettingsError: not a ``sqlite`` URL, a host in it, or an unknown
                or invalid option (the message names it).
        """

        def refuse(why: str) -> SettingsError:
            return SettingsError([("LMS_EVENTS_URL", why)])

        if options is not None:
            clock = clock or options.clock
            state_dir = state_dir if state_dir is not None else options.state_dir
        raw = (url or "sqlite://").strip()
        if len(raw) > 4096:
            raise refuse("longer than 4096 characters")
        scheme, sep, rest = raw.partition("://")
        if scheme.lower() != "sqlite" or not sep:
            raise refuse(f"the embedded log takes sqlite:// URLs, not {scheme[:20]!r}")
        location, _, query_text = rest.partition("?")
        if location and not location.startswith("/"):
            raise refuse(
                "sqlite:///relative/path or sqlite:////absolute/path: no host after sqlite://"
            )
        location = location[1:]
        if location == ":memory:":
            raise refuse("an in-memory SQLite file serves no other process; use memory://")
        if location:
            path = Path(location)
        else:
            path = Path(".lms" if state_dir is None else state_dir) / DEFAULT_FILE
        try:
            query = parse_qsl(query_text, keep_blank_values=True, strict_parsing=bool(query_text))
        except ValueError as exc:
            raise refuse(f"cannot parse the query: {exc}") from None
        parsed: dict[str, Any] = {}
        for name, value in query:
            try:
                parsed[name] = _option(name, value)
            except ValueError as exc:
                raise refuse(str(exc)) from None
        try:
            return cls(path, clock=clock, **parsed)
        except ValueError as exc:
            raise refuse(str(exc)) from None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Open (and create) the file and start polling and retention (idempotent).

        Raises:
            TransportUnavailable: the file or its folder cannot be opened or
                created, or it is not an event log this code can read.
        """
        if self._started:
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lms-events-log")
        try:
            await asyncio.get_running_loop().run_in_executor(pool, self._store.open)
        except _DB_ERRORS as exc:
            pool.shutdown(wait=False)
            raise TransportUnavailable(f"cannot open the event log {self.path}: {exc}") from exc
        self._pool = pool
        self._started = True
        self._stopping = asyncio.Event()
        self._background = [
            asyncio.create_task(self._poll(), name="lms-events-log-poll"),
            asyncio.create_task(self._retain(), name="lms-events-log-retention"),
        ]

    async def stop(self) -> None:
        """Stop every subscription without draining and close the file (idempotent).

        Deliveries still unsettled are made visible again at once, so the
        group's other members (or this process after a restart) get them.
        """
        if self._pool is None:
            return
        self._started = False
        self._stopping.set()
        for subscription in list(self._subscriptions):
            await subscription.stop(drain=False)
        await self._release(list(self._unsettled))
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        pool, self._pool = self._pool, None
        try:
            await asyncio.get_running_loop().run_in_executor(pool, self._store.close)
        finally:
            pool.shutdown(wait=True)

    async def ping(self) -> None:
        """Read the log's tables.

        Raises:
            TransportUnavailable: not started, or the file cannot be read.
        """
        if not self._started:
            raise TransportUnavailable("the event log is not started")
        try:
            await self._read(LogStore.ping)
        except _DB_ERRORS as exc:
            raise TransportUnavailable(f"the event log cannot be read: {exc}") from exc

    # -- the protocol --------------------------------------------------------

    async def publish(self, messages: Sequence[Message]) -> None:
        """Append the messages in one transaction and queue them for every group.

        Returns once the transaction committed (see the module's note on
        durability). Nothing is stored when it raises.

        Raises:
            PublishFailed: not started, a message larger than
                ``limits.max_bytes`` or with more than ``limits.max_attributes``
                attributes, or the file cannot be written.
        """
        if not self._started:
            raise PublishFailed("the event log is not started")
        rows = []
        for message in messages:
            row = encode(message)
            if len(row[2]) + len(row[3]) > self.limits.max_bytes:
                raise PublishFailed(
                    f"event {message.id!r} is larger than {self.limits.max_bytes} bytes"
                )
            if len(message.attributes) > self.limits.max_attributes:
                raise PublishFailed(
                    f"event {message.id!r} has more than {self.limits.max_attributes} attributes"
                )
            rows.append(row)
        if not rows:
            return
        now = self.clock.now().timestamp()
        try:
            await self._write(lambda db: LogStore.append(db, rows, now))
        except _DB_ERRORS as exc:
            raise PublishFailed(f"the event log did not store the events: {exc}") from exc
        types = {row[0] for row in rows}
        self._notify(lambda s: not types.isdisjoint(s.spec.types))

    async def subscribe(self, spec: SubscriptionSpec, handler: Handler) -> _LogSubscription:
        """Make ``spec.group`` take ``spec.types`` (durably) and start delivering.

        Raises:
            TransportUnavailable: not started, or the file cannot be written.
        """
        if not self._started:
            raise TransportUnavailable("the event log is not started")
        now = self.clock.now().timestamp()
        try:
            await self._write(lambda db: LogStore.join(db, spec.group, spec.types, now))
        except _DB_ERRORS as exc:
            raise TransportUnavailable(f"the event log cannot be written: {exc}") from exc
        subscription = _LogSubscription(self, spec, handler)
        self._subscriptions.add(subscription)
        subscription.start()
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

        Each comes again with ``attempt`` 1 (a lease it still has is
        dropped: its ack becomes a no-op).

        Raises:
            ValueError: both points given, a naive ``since``, or a
                ``position`` that is not a position of this log.
            TransportUnavailable: not started, or the file cannot be written.
        """
        if since is not None and position is not None:
            raise ValueError("give since or position, not both")
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        start = 0
        if position is not None:
            start = _position(position)
        if not self._started:
            raise TransportUnavailable("the event log is not started")
        wanted = list(dict.fromkeys(types))
        if not wanted:
            return
        since_ts = since.timestamp() if since is not None else -1e300
        now = self.clock.now().timestamp()
        try:
            await self._write(
                lambda db: LogStore.rewind(db, group, wanted, start=start, since=since_ts, now=now)
            )
        except _DB_ERRORS as exc:
            raise TransportUnavailable(f"the event log cannot be written: {exc}") from exc
        self._notify(lambda s: s.spec.group == group)

    # -- beyond the protocol -------------------------------------------------

    async def read(self, position: str) -> Message | None:
        """The retained event at ``position``, or ``None`` when it is not retained.

        Raises:
            ValueError: ``position`` is not a position of this log.
            StoredEventUnreadable: the row is corrupt or over ``limits``.
            TransportUnavailable: not started, or the file cannot be read.
        """
        row = _position(position)
        if not self._started:
            raise TransportUnavailable("the event log is not started")
        try:
            return await self._read(lambda store: store.read(row))
        except _DB_ERRORS as exc:
            raise TransportUnavailable(f"the event log cannot be read: {exc}") from exc

    async def rejected(self, limit: int = 100) -> list[RejectedEntry]:
        """The newest stored rows that groups could not read (newest first).

        Raises:
            TransportUnavailable: not started, or the file cannot be read.
        """
        if not self._started:
            raise TransportUnavailable("the event log is not started")
        try:
            return await self._read(lambda store: store.rejected(max(1, min(limit, 10_000))))
        except _DB_ERRORS as exc:
            raise TransportUnavailable(f"the event log cannot be read: {exc}") from exc

    async def trim(self) -> int:
        """Apply retention now: delete events past ``max_age`` or ``max_rows``.

        Returns how many were deleted. Pending deliveries of those events
        are dropped with them (and logged).

        Raises:
            TransportUnavailable: not started, or the file cannot be written.
        """
        if not self._started:
            raise TransportUnavailable("the event log is not started")
        if self.max_age is None and self.max_rows is None:
            return 0
        total = 0
        more = True
        while more:
            now = self.clock.now().timestamp()
            try:
                deleted, dropped, more = await self._write(
                    partial(
                        self._store.trim,
                        now=now,
                        max_age=self.max_age,
                        max_rows=self.max_rows,
                        chunk=10_000,
                    )
                )
            except _DB_ERRORS as exc:
                raise TransportUnavailable(f"the event log cannot be written: {exc}") from exc
            total += deleted
            if dropped:
                self._log.warning(
                    "retention deleted events some groups had not acked",
                    deleted=deleted,
                    unacked=dropped,
                )
        return total

    # -- plumbing ------------------------------------------------------------

    def _notify(self, wanted: Callable[[_LogSubscription], bool]) -> None:
        for subscription in self._subscriptions:
            if wanted(subscription):
                subscription.wake.set()

    async def _read(self, work: Callable[[LogStore], T]) -> T:
        pool = self._pool
        if pool is None:
            raise sqlite3.ProgrammingError("the event log is not started")
        return await asyncio.get_running_loop().run_in_executor(pool, work, self._store)

    def _write(self, piece: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``piece`` for the next write transaction (group commit)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((piece, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="lms-events-log-writer")
        return future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            results: list[Any]
            try:
                if self._pool is None:
                    raise sqlite3.ProgrammingError("the event log is not started")
                pieces = [piece for piece, _ in batch]
                results = await loop.run_in_executor(self._pool, self._store.transaction, pieces)
            except Exception as exc:  # the transaction failed: every piece did
                if not isinstance(exc, _DB_ERRORS):
                    exc = sqlite3.OperationalError(f"the event log's worker failed: {exc!r}")
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue  # its caller was cancelled
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _claim(
        self, subscription: _LogSubscription, limit: int
    ) -> tuple[list[_LogDelivery], float | None]:
        spec = subscription.spec
        now = self.clock.now().timestamp()
        token = secrets.randbits(62)
        try:
            claimed, rejected, next_due = await self._write(
                lambda db: self._store.claim(
                    db,
                    spec.group,
                    spec.types,
                    limit=limit,
                    now=now,
                    lease_until=now + spec.ack_wait,
                    token=token,
                )
            )
        except _DB_ERRORS as exc:
            raise TransportUnavailable(f"the event log cannot be written: {exc}") from exc
        for problem in rejected:
            self._log.warning(
                "unreadable stored event taken out of its group",
                group=spec.group,
                position=problem.position,
                reason=problem.reason,
            )
        lease_until = now + spec.ack_wait
        deliveries = [_LogDelivery(self, spec.group, row, token, lease_until) for row in claimed]
        if len(self._unsettled) > _PRUNE_UNSETTLED:  # forgotten ones whose lease is over
            self._unsettled = {d for d in self._unsettled if d.lease_until > now}
        self._unsettled.update(deliveries)
        return deliveries, next_due

    async def _settle(
        self,
        group: str,
        acks: Sequence[tuple[str, int, int]],
        delays: Sequence[tuple[float, str, int, int]],
    ) -> None:
        try:
            await self._write(lambda db: LogStore.settle(db, acks, delays))
        except _DB_ERRORS as exc:
            raise TransportUnavailable(
                f"the event log cannot be written (delivered again after ack_wait): {exc}"
            ) from exc
        self._notify(lambda s: s.spec.group == group)

    async def _release(self, deliveries: Iterable[_LogDelivery]) -> None:
        now = self.clock.now().timestamp()
        rows = [(now, d.group, d.row, d.token) for d in deliveries if d.close()]
        if rows:
            try:
                await self._write(lambda db: LogStore.settle(db, (), rows))
            except _DB_ERRORS as exc:
                self._log.warning("could not release deliveries", error=str(exc))

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` of the clock; ``False`` when the transport stops first."""
        await _wait(self._stopping, self.clock, seconds)
        return not self._stopping.is_set()

    async def _poll(self) -> None:
        """Wake every subscription when another process committed to the file."""
        interval = self.poll_min
        last: int | None = None
        while await self._pause(interval):
            if not self._subscriptions:
                interval = self.poll_max
                continue
            try:
                version = await self._read(LogStore.data_version)
            except _DB_ERRORS as exc:
                self._log.warning("event log poll failed", error=str(exc))
                interval = self.poll_max
                continue
            if version != last:
                last = version
                interval = self.poll_min
                self._notify(lambda s: True)
            else:
                interval = min(interval * 2, self.poll_max)

    async def _retain(self) -> None:
        while await self._pause(self.retention_interval):
            try:
                await self.trim()
            except TransportUnavailable as exc:
                self._log.warning("event log retention failed", error=exc.reason)


class _LogSubscription:
    """One member of a group; see :class:`~lms_shared.events.Subscription`."""

    def __init__(self, transport: LogTransport, spec: SubscriptionSpec, handler: Handler) -> None:
        self.transport = transport
        self.spec = spec
        self.handler = handler
        self.active = True
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self._fetcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._fetcher = asyncio.create_task(self._fetch(), name=f"lms-events-log-{self.spec.group}")

    async def _fetch(self) -> None:
        transport = self.transport
        clock = transport.clock
        while self.active:
            self.wake.clear()
            free = self.spec.concurrency - len(self.tasks)
            timeout = transport.poll_max
            if free > 0:
                try:
                    batch, next_due = await transport._claim(self, free)
                except TransportUnavailable as exc:
                    transport._log.warning(
                        "event log claim failed", group=self.spec.group, error=exc.reason
                    )
                    batch, next_due = [], None
                except Exception as exc:  # a bug must not end the subscription silently
                    transport._log.error(
                        "event log claim failed", group=self.spec.group, error=repr(exc)
                    )
                    batch, next_due = [], None
                if not self.active:
                    await transport._release(batch)
                    return
                for delivery in batch:
                    task = asyncio.create_task(self._run(delivery))
                    self.tasks.add(task)
                if len(batch) == free:
                    continue
                if next_due is not None:
                    timeout = min(timeout, max(0.0, next_due - clock.now().timestamp()))
            await _wait(self.wake, clock, timeout)

    async def _run(self, delivery: _LogDelivery) -> None:
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
            self.wake.set()

    async def stop(self, *, drain: bool = True, timeout: float = 30.0) -> None:
        """Stop taking deliveries; with ``drain`` wait up to ``timeout`` for handlers.

        Handlers still running then are cancelled; their deliveries stay
        leased and come again after ``ack_wait`` (at once if the whole
        transport stops).
        """
        if self.active:
            self.active = False
            self.transport._subscriptions.discard(self)
            self.wake.set()
        fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None:
            # a claim in flight finishes (and is released); bounded by the lock wait
            done, _ = await asyncio.wait({fetcher}, timeout=self.transport._store.busy_timeout + 1)
            if not done:
                fetcher.cancel()
                await asyncio.gather(fetcher, return_exceptions=True)
        running = set(self.tasks)
        if drain and running:
            timer = asyncio.ensure_future(self.transport.clock.sleep(timeout))
            try:
                pending = {t for t in running if not t.done()}
                while pending and not timer.done():
                    await asyncio.wait([*pending, timer], return_when=asyncio.FIRST_COMPLETED)
                    pending = {t for t in pending if not t.done()}
            finally:
                timer.cancel()
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


class _LogDelivery:
    """One delivery; see :class:`~lms_shared.events.Delivery`."""

    __slots__ = (
        "_attempt",
        "_message",
        "_settled",
        "_transport",
        "group",
        "lease_until",
        "row",
        "token",
    )

    def __init__(
        self, transport: LogTransport, group: str, row: Claimed, token: int, lease_until: float
    ) -> None:
        self._transport = transport
        self.group = group
        self.lease_until = lease_until
        self.row = row.position
        self.token = token
        self._message = row.message
        self._attempt = row.attempt
        self._settled = False

    @property
    def message(self) -> Message:
        """The delivered message."""
        return self._message

    @property
    def attempt(self) -> int:
        """1 on the first delivery, one more per redelivery (kept in the log)."""
        return self._attempt

    @property
    def position(self) -> str:
        """The message's position in the log."""
        return str(self.row)

    async def ack(self) -> None:
        """Settle: delete the group's row (once the write committed).

        Raises:
            TransportUnavailable: the log cannot be written; the delivery
                comes again after ``ack_wait``.
        """
        if self.close():
            await self._transport._settle(self.group, [(self.group, self.row, self.token)], ())
        # settled: nothing to do

    async def retry(self, delay: float) -> None:
        """Settle, and make the row visible again after ``delay`` seconds.

        Raises:
            ValueError: ``delay`` is negative.
            TransportUnavailable: the log cannot be written; the delivery
                comes again after ``ack_wait``.
        """
        if delay < 0:
            raise ValueError("retry delay must not be negative")
        if self.close():
            due = self._transport.clock.now().timestamp() + delay
            await self._transport._settle(self.group, (), [(due, self.group, self.row, self.token)])

    def close(self) -> bool:
        """Mark settled; ``True`` the first time."""
        if self._settled:
            return False
        self._settled = True
        self._transport._unsettled.discard(self)
        return True


def _position(position: str) -> int:
    if (
        not isinstance(position, str)
        or not position.isascii()
        or not position.isdigit()
        or len(position) > _MAX_POSITION_DIGITS
    ):
        raise ValueError(f"{position!r} is not an event log position")
    return int(position)


_SECONDS = ("max_age", "retention_interval", "busy_timeout", "poll_min", "poll_max")


def _option(name: str, value: str) -> object:
    """One ``from_url`` query option, parsed."""
    if name == "synchronous":
        if value.lower() not in ("normal", "full"):
            raise ValueError(f"synchronous= must be normal or full, got {value!r}")
        return value.lower()
    if name in ("max_age", "max_rows") and value.lower() == "none":
        return None
    if name == "max_rows":
        if not value.isdigit() or len(value) > 12:
            raise ValueError(f"max_rows= must be a count, got {value!r}")
        return int(value)
    if name in _SECONDS:
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{name}= must be a number of seconds, got {value!r}") from None
        if not 0 < seconds <= 10 * 365 * 24 * 3600:
            raise ValueError(f"{name}= must be a positive number of seconds, got {value!r}")
        return seconds
    raise ValueError(f"unknown option {name}= for sqlite://")
