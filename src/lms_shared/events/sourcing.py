"""Event sourcing on the service's database: aggregates, an event store, snapshots, projections.

An aggregate's state is the fold of its events; nothing else is stored::

    class Gradebook(Aggregate[GradebookState]):
        state_model = GradebookState

        def record(self, grade: Grade) -> None:            # a command: check, then record
            if not self.state.open:
                raise Conflict("the gradebook is closed")
            self.record_event(GradeRecorded(...))

        @applies(GradeRecorded)                            # how an event changes the state
        def _recorded(self, event: GradeRecorded) -> None:
            self.state.grades.append(event.score)

    books = AggregateRepository(EventStore(service.db, registry=service.events.registry),
                                Gradebook, snapshot_every=50)
    book = await books.get(enrollment_id)                  # snapshot + the events after it
    book.record(grade)
    await books.save(book)                                 # append with the expected version
    # or all three, re-run when a concurrent writer appended first:
    await books.update(enrollment_id, lambda book: book.record(grade))

* :class:`EventStore` appends a stream's events with an **expected
  version**: a writer that read an older version gets a typed
  :class:`StreamVersionConflict` (409 ``stream-version-conflict``) and
  nothing is written; it is a :class:`~lms_shared.db.StaleRead`, so
  :meth:`Database.run <lms_shared.db.Database.run>` and
  :meth:`AggregateRepository.update` load again and re-run the command.
  Events are kept as CloudEvents (JSON), so reading
  them goes through the :class:`~lms_shared.events.EventRegistry`:
  validated, and older schema versions lifted by its upcasters.
* Every event also gets a global **position**; on PostgreSQL appends take a
  transaction advisory lock, so positions become visible in order and a
  projection reading "after position N" never skips a late commit.
* **Snapshots** (``snapshot_every``) store the state model as JSON at a
  version; loading starts from the newest one.
* :class:`Projection` and :class:`ProjectionRunner`: a read model fed from
  the global order, each batch applied in one transaction with its
  checkpoint (so a projection sees each event once), ``catch_up`` from the
  checkpoint and ``rebuild`` from the start.
* :meth:`AggregateRepository.save` with a ``bus`` also publishes the new
  events through the bus's transactional outbox, in the append's
  transaction: other services hear of them once they are stored.

Written by hand: the store is a few statements on the service's own
SQLAlchemy database (SQLite and PostgreSQL), where a dedicated event store
server (EventStoreDB) would be one more engine to run; the aggregate base
is a fold and a dispatch table.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, Generic, TypeVar

import orjson
from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from lms_shared.clock import Clock, SystemClock
from lms_shared.db import ConstraintViolation, Database, StaleRead, UtcDateTime
from lms_shared.errors import ErrorCode
from lms_shared.events._bus import EventBus
from lms_shared.events._json import from_json, to_json
from lms_shared.events._schema import Event, EventRegistry

__all__ = [
    "CHECKPOINT_TABLE",
    "SNAPSHOT_TABLE",
    "STORE_TABLE",
    "STREAM_VERSION_CONFLICT",
    "Aggregate",
    "AggregateRepository",
    "EventStore",
    "Projection",
    "ProjectionRunner",
    "RecordedEvent",
    "StreamVersionConflict",
    "applies",
    "create_sourcing_tables",
    "sourcing_tables",
]

STORE_TABLE: Final = "lms_event_store"
SNAPSHOT_TABLE: Final = "lms_event_snapshots"
CHECKPOINT_TABLE: Final = "lms_projection_checkpoints"

STREAM_VERSION_CONFLICT = ErrorCode(
    "stream-version-conflict", 409, "The stream changed since it was read"
)
_POSITION = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: the rowid
_LOCK_KEY = 0x6C6D7365  # "lmse": the advisory lock that orders appends on PostgreSQL
_RUNNER_LOCK_KEY = 0x6C6D7370  # "lmsp", with the projection's name: one runner at a time
_MAX_STREAM = 200

S = TypeVar("S", bound=BaseModel)
A = TypeVar("A", bound="Aggregate[Any]")
E = TypeVar("E", bound=Event)


class StreamVersionConflict(StaleRead):
    """409: the stream is not at the version the writer expected; nothing was written.

    A :class:`~lms_shared.db.StaleRead`: :meth:`Database.run
    <lms_shared.db.Database.run>` (and so :meth:`AggregateRepository.update`)
    loads the aggregate again and re-runs the command.

    Attributes:
        stream: the stream's id.
        expected: the version the writer read.
        actual: the stream's version now (``None`` when a concurrent append won the race).
    """

    code = STREAM_VERSION_CONFLICT

    def __init__(self, stream: str, expected: int, actual: int | None) -> None:
        now = f" it is at version {actual}" if actual is not None else " another write won"
        super().__init__(
            f"stream {stream!r} was expected at version {expected};{now}: read it again",
            code=STREAM_VERSION_CONFLICT,
        )
        self.stream, self.expected, self.actual = stream, expected, actual
        self.extensions["expected_version"] = expected
        if actual is not None:
            self.extensions["actual_version"] = actual


def sourcing_tables(metadata: MetaData) -> tuple[Table, Table, Table]:
    """The event store, snapshot and checkpoint tables on ``metadata`` (for migrations)."""
    store = Table(
        STORE_TABLE,
        metadata,
        Column("position", _POSITION, primary_key=True, autoincrement=True),
        Column("stream", String(_MAX_STREAM), nullable=False),
        Column("version", Integer, nullable=False),
        Column("event_id", String(200), nullable=False),
        Column("event_type", String(200), nullable=False),
        Column("recorded_at", UtcDateTime(), nullable=False),
        Column("document", Text, nullable=False),
        UniqueConstraint("stream", "version", name=f"{STORE_TABLE}_stream_version"),
    )
    snapshots = Table(
        SNAPSHOT_TABLE,
        metadata,
        Column("stream", String(_MAX_STREAM), primary_key=True),
        Column("version", Integer, nullable=False),
        Column("state", Text, nullable=False),
        Column("taken_at", UtcDateTime(), nullable=False),
    )
    checkpoints = Table(
        CHECKPOINT_TABLE,
        metadata,
        Column("projection", String(200), primary_key=True),
        Column("position", _POSITION, nullable=False),
    )
    return store, snapshots, checkpoints


async def create_sourcing_tables(database: Database) -> None:
    """Create the three tables if missing (tests, tools; services migrate)."""
    metadata = MetaData()
    sourcing_tables(metadata)
    async with database.engine.begin() as conn:
        await conn.run_sync(lambda sync: metadata.create_all(sync, checkfirst=True))


# -- aggregates ----------------------------------------------------------------

_APPLIES = "__lms_applies__"


def applies(*events: type[Event]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a method of an :class:`Aggregate` or :class:`Projection` as handling ``events``."""

    def mark(method: Callable[..., None]) -> Callable[..., None]:
        setattr(method, _APPLIES, tuple(events))
        return method

    return mark


def _handlers(cls: type) -> dict[str, str]:
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            for event in getattr(member, _APPLIES, ()):
                found[event.event_type()] = name
    return found


class Aggregate(Generic[S]):
    """A consistency boundary whose state is the fold of its events.

    Subclasses set :attr:`state_model` (a pydantic model whose defaults are
    the state before any event), decorate one method per event type with
    :func:`applies`, and record events from their commands with
    :meth:`record_event`. An event type without a handler is ignored.

    Attributes:
        id: the aggregate's id (its stream is ``<stream_prefix>-<id>``).
        version: how many events the state holds (0 for a new aggregate).
        state: the current state.
    """

    state_model: ClassVar[type[BaseModel]]
    stream_prefix: ClassVar[str] = ""
    _dispatch: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = _handlers(cls)
        if not cls.stream_prefix:
            cls.stream_prefix = cls.__name__.lower()

    def __init__(self, id: str) -> None:
        self.id = str(id)
        self.version = 0
        self.state: S = self.state_model()  # type: ignore[assignment]
        self._pending: list[Event] = []

    @property
    def stream(self) -> str:
        """The stream the aggregate's events are stored in."""
        return f"{self.stream_prefix}-{self.id}"

    @property
    def pending(self) -> tuple[Event, ...]:
        """Events recorded since the aggregate was loaded or saved."""
        return tuple(self._pending)

    def record_event(self, event: Event) -> None:
        """Apply a new event to the state and keep it to be saved."""
        self.apply(event)
        self._pending.append(event)

    def apply(self, event: Event) -> None:
        """Fold one event into the state (loading and recording both come here)."""
        name = self._dispatch.get(type(event).event_type())
        if name is not None:
            getattr(self, name)(event)
        self.version += 1

    def _saved(self) -> None:
        self._pending.clear()


# -- the store ------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedEvent:
    """An event as the store keeps it.

    Attributes:
        position: its place in the store's global order.
        stream: the stream it belongs to.
        version: its place in the stream (1 for the first).
        event: the event, validated (older schema versions lifted).
        recorded_at: when it was appended.
    """

    position: int
    stream: str
    version: int
    event: Event
    recorded_at: datetime


class EventStore:
    """Streams of events in the service's database (:func:`sourcing_tables`).

    Args:
        database: the service's :class:`~lms_shared.db.Database`.
        registry: the event types the store writes and reads (the bus's,
            ``service.events.registry``, so the schemas are the same).
        source: the CloudEvents ``source`` of appended events.
        clock: stamps ``recorded_at``.
    """

    def __init__(
        self,
        database: Database,
        *,
        registry: EventRegistry,
        source: str = "/event-store",
        clock: Clock | None = None,
    ) -> None:
        self.database = database
        self.registry = registry
        self.source = source
        self.clock: Clock = clock or SystemClock()
        self.store, self.snapshots, self.checkpoints = sourcing_tables(MetaData())

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        *,
        expected_version: int,
        tx: AsyncSession | None = None,
    ) -> int:
        """Append ``events`` to ``stream`` if it is at ``expected_version``; its new version.

        With ``tx`` the append joins that unit of work (a savepoint of it).

        Raises:
            StreamVersionConflict: the stream is at another version (or a
                concurrent append won); nothing was written.
            InvalidEventData: an event fails its model.
        """
        if not 0 < len(stream) <= _MAX_STREAM:
            raise ValueError(f"a stream id is 1 to {_MAX_STREAM} characters")
        if expected_version < 0:
            raise ValueError("expected_version is 0 (a new stream) or more")
        if not events:
            return expected_version
        for event in events:
            self.registry.register(type(event))
        now = self.clock.now()
        rows = []
        for offset, event in enumerate(events, 1):
            cloud = self.registry.encode(event, source=self.source, subject=stream)
            rows.append(
                {
                    "stream": stream,
                    "version": expected_version + offset,
                    "event_id": cloud.id,
                    "event_type": cloud.type,
                    "recorded_at": now,
                    "document": to_json(cloud).decode(),
                }
            )
        try:
            async with self.database.transaction() as session:
                if tx is not None and session is not tx:
                    raise ValueError("tx must be a unit of work of this store's database")
                if (await session.connection()).dialect.name == "postgresql":
                    # appends in one order: positions become visible in order
                    await session.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"))
                actual = await self._version(session, stream)
                if actual != expected_version:
                    raise StreamVersionConflict(stream, expected_version, actual)
                await session.execute(insert(self.store), rows)
        except ConstraintViolation:
            raise StreamVersionConflict(stream, expected_version, None) from None
        return expected_version + len(events)

    async def _version(self, session: AsyncSession, stream: str) -> int:
        found = await session.scalar(
            select(func.max(self.store.c.version)).where(self.store.c.stream == stream)
        )
        return int(found or 0)

    async def version(self, stream: str) -> int:
        """The stream's version (0 when it has no events)."""
        async with self.database.transaction(read_only=True) as session:
            return await self._version(session, stream)

    async def read(self, stream: str, *, after_version: int = 0) -> list[RecordedEvent]:
        """The stream's events after ``after_version``, in order."""
        query = (
            select(self.store)
            .where(self.store.c.stream == stream, self.store.c.version > after_version)
            .order_by(self.store.c.version)
        )
        async with self.database.transaction(read_only=True) as session:
            rows = (await session.execute(query)).all()
        return [self._recorded(row) for row in rows]

    async def read_all(
        self, *, after_position: int = 0, limit: int = 500, session: AsyncSession | None = None
    ) -> list[RecordedEvent]:
        """Events of every stream after ``after_position``, in the global order."""
        query = (
            select(self.store)
            .where(self.store.c.position > after_position)
            .order_by(self.store.c.position)
            .limit(limit)
        )
        if session is not None:
            rows = (await session.execute(query)).all()
        else:
            async with self.database.transaction(read_only=True) as own:
                rows = (await own.execute(query)).all()
        return [self._recorded(row) for row in rows]

    def _recorded(self, row: Any) -> RecordedEvent:
        cloud = from_json(row.document)
        return RecordedEvent(
            position=int(row.position),
            stream=row.stream,
            version=int(row.version),
            event=self.registry.decode(cloud),
            recorded_at=row.recorded_at,
        )

    # -- snapshots ---------------------------------------------------------

    async def save_snapshot(self, stream: str, version: int, state: BaseModel) -> None:
        """Keep ``state`` as the stream's state at ``version`` (the newest one wins)."""
        document = state.model_dump_json()
        table = self.snapshots
        values = {"version": version, "state": document, "taken_at": self.clock.now()}
        async with self.database.transaction() as session:
            current = await session.scalar(select(table.c.version).where(table.c.stream == stream))
            if current is None:
                try:  # in a savepoint: a concurrent first snapshot is no error
                    async with self.database.transaction() as nested:
                        await nested.execute(insert(table).values(stream=stream, **values))
                    return
                except ConstraintViolation:
                    pass
            # conditional, so a slower writer of an older snapshot never wins
            await session.execute(
                update(table)
                .where(table.c.stream == stream, table.c.version < version)
                .values(values)
            )

    async def snapshot(self, stream: str) -> tuple[int, dict[str, Any]] | None:
        """``(version, state as JSON data)`` of the stream's newest snapshot, if any."""
        async with self.database.transaction(read_only=True) as session:
            row = (
                await session.execute(
                    select(self.snapshots.c.version, self.snapshots.c.state).where(
                        self.snapshots.c.stream == stream
                    )
                )
            ).first()
        if row is None:
            return None
        state = orjson.loads(row.state)
        return (int(row.version), state) if isinstance(state, dict) else None


class AggregateRepository(Generic[A]):
    """Loads and saves aggregates of one class through an :class:`EventStore`.

    Args:
        store: the event store.
        aggregate: the aggregate class.
        snapshot_every: take a snapshot each time a save crosses a multiple
            of this many versions (``None``: never).
        bus: also publish saved events through this bus's outbox, in the
            append's transaction (the bus must ``use_database`` the store's
            database and declare the event types it publishes).
    """

    def __init__(
        self,
        store: EventStore,
        aggregate: type[A],
        *,
        snapshot_every: int | None = 100,
        bus: EventBus | None = None,
    ) -> None:
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError("snapshot_every is at least 1 (or None)")
        self.store = store
        self.aggregate = aggregate
        self.snapshot_every = snapshot_every
        self.bus = bus

    async def get(self, id: str) -> A:
        """The aggregate as its newest snapshot and later events make it (version 0 if new)."""
        found = self.aggregate(id)
        snapshot = await self.store.snapshot(found.stream)
        if snapshot is not None:
            version, state = snapshot
            found.state = found.state_model.model_validate(state)
            found.version = version
        for recorded in await self.store.read(found.stream, after_version=found.version):
            found.apply(recorded.event)
        return found

    async def update(
        self,
        id: str,
        command: Callable[[A], None],
        *,
        tx: AsyncSession | None = None,
        attempts: int | None = None,
    ) -> A:
        """Load the aggregate, run ``command`` on it and save it, in one unit of work.

        A concurrent writer that appended first makes the save a
        :class:`StreamVersionConflict`: the unit runs again (load, command,
        save), up to ``attempts`` times (``LMS_DATABASE_RETRY_ATTEMPTS``).
        With ``tx`` it joins that unit of work, whose own :meth:`Database.run
        <lms_shared.db.Database.run>` re-runs it. ``command`` must only
        record events (it may run more than once); what it raises (a
        :class:`~lms_shared.errors.Conflict` of the domain) passes through.

        Returns:
            The saved aggregate.

        Raises:
            StreamVersionConflict: still conflicting after the last attempt.
        """

        async def unit(session: AsyncSession) -> A:
            found = await self.get(id)
            command(found)
            await self.save(found, tx=session)
            return found

        database = self.store.database
        if tx is not None:
            async with database.transaction() as session:
                if session is not tx:
                    raise ValueError("tx must be a unit of work of the store's database")
                return await unit(session)
        return await database.run(unit, attempts=attempts)

    async def save(self, aggregate: A, *, tx: AsyncSession | None = None) -> int:
        """Append the aggregate's pending events; its new version.

        Raises:
            StreamVersionConflict: the stream moved since the aggregate was
                loaded (load it again and retry the command).
        """
        pending = aggregate.pending
        if not pending:
            return aggregate.version
        expected = aggregate.version - len(pending)
        async with self.store.database.transaction() as session:
            if tx is not None and session is not tx:
                raise ValueError("tx must be a unit of work of the store's database")
            version = await self.store.append(
                aggregate.stream, pending, expected_version=expected, tx=session
            )
            if self.bus is not None:
                await self.bus.publish(list(pending), outbox=session, key=aggregate.stream)
        aggregate._saved()
        every = self.snapshot_every
        if every is not None and version // every > expected // every:
            await self.store.save_snapshot(aggregate.stream, version, aggregate.state)
        return version


# -- projections ----------------------------------------------------------------


class Projection:
    """A read model fed from the store's global order.

    Subclasses set :attr:`name`, decorate one method per event type with
    :func:`applies` (``async def on_x(self, event, tx)``: write with ``tx``,
    the batch's unit of work) and implement :meth:`reset` for rebuilds.
    """

    name: ClassVar[str] = ""
    _dispatch: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = _handlers(cls)
        if not cls.name:
            cls.name = cls.__name__.lower()
        for method in cls._dispatch.values():
            if not inspect.iscoroutinefunction(getattr(cls, method)):
                raise TypeError(f"{cls.__name__}.{method} must be an async method (event, tx)")

    async def handle(self, recorded: RecordedEvent, tx: AsyncSession) -> bool:
        """Apply one event; whether the projection takes its type."""
        name = self._dispatch.get(type(recorded.event).event_type())
        if name is None:
            return False
        await getattr(self, name)(recorded.event, tx)
        return True

    async def reset(self, tx: AsyncSession) -> None:
        """Forget everything the projection wrote (before a rebuild)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be rebuilt: implement reset()")


class ProjectionRunner:
    """Feeds a :class:`Projection` from its checkpoint, a batch per transaction.

    Args:
        store: the event store.
        projection: the read model.
        batch: events per transaction.
    """

    def __init__(self, store: EventStore, projection: Projection, *, batch: int = 500) -> None:
        if batch < 1:
            raise ValueError("batch is at least 1")
        self.store, self.projection, self.batch = store, projection, batch

    async def position(self) -> int:
        """The position of the last event the projection took into account."""
        async with self.store.database.transaction(read_only=True) as session:
            return await self._checkpoint(session)

    async def _checkpoint(self, session: AsyncSession) -> int:
        table = self.store.checkpoints
        found = await session.scalar(
            select(table.c.position).where(table.c.projection == self.projection.name)
        )
        return int(found or 0)

    async def catch_up(self) -> int:
        """Apply every event after the checkpoint; how many the projection took."""
        taken = 0
        while True:
            applied, read = await self.store.database.run(self._batch)
            taken += applied
            if read < self.batch:
                return taken

    async def _batch(self, session: AsyncSession) -> tuple[int, int]:
        """One batch and its checkpoint: (events the projection took, events read).

        Runners of one projection take turns: on PostgreSQL a transaction
        advisory lock on the projection's name, on SQLite the write lock
        every writer holds, so the projection's own writes never race. Should
        the checkpoint still have moved (a runner without the lock), the
        batch rolls back (:class:`StreamVersionConflict`) and
        :meth:`Database.run <lms_shared.db.Database.run>` runs it again from
        the new checkpoint.
        """
        if (await session.connection()).dialect.name == "postgresql":
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:key, hashtext(:name))"),
                {"key": _RUNNER_LOCK_KEY, "name": self.projection.name},
            )
        start = await self._checkpoint(session)
        events = await self.store.read_all(after_position=start, limit=self.batch, session=session)
        if not events:
            return 0, 0
        applied = 0
        for recorded in events:
            applied += await self.projection.handle(recorded, session)
        await self._advance(session, start, events[-1].position)
        return applied, len(events)

    async def _advance(self, session: AsyncSession, start: int, end: int) -> None:
        table = self.store.checkpoints
        name = self.projection.name
        if start == 0:
            exists = await session.scalar(
                select(func.count()).select_from(table).where(table.c.projection == name)
            )
            if not exists:
                try:  # in a savepoint: a runner that inserted first is a conflict, not a 500
                    async with self.store.database.transaction() as nested:
                        await nested.execute(insert(table).values(projection=name, position=end))
                except ConstraintViolation:
                    raise StreamVersionConflict(f"projection:{name}", start, None) from None
                return
        moved = await session.execute(
            update(table)
            .where(table.c.projection == name, table.c.position == start)
            .values(position=end)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            # another runner took this batch: roll ours back, the next round reads on
            raise StreamVersionConflict(f"projection:{name}", start, None)

    async def rebuild(self) -> int:
        """Reset the projection and apply every event from the start."""
        async with self.store.database.transaction() as session:
            await self.projection.reset(session)
            table = self.store.checkpoints
            await session.execute(delete(table).where(table.c.projection == self.projection.name))
        return await self.catch_up()
