"""The bus's SQL stores: outbox, inbox and dead letters in the service's database.

Imported only by services that keep events in their database (it imports
SQLAlchemy; ``lms_shared.events`` does not). On SQLite and PostgreSQL::

    from lms_shared.events.sql import event_tables

    event_tables(Base.metadata)               # the three tables, in the service's migrations
    service.events.use_database(service.db)   # SqlOutbox, SqlInbox, SqlDeadLetterStore

Tables (names overridable):

* ``lms_event_outbox``: events written in a business transaction, waiting
  for the relay; deleted once the broker confirmed them.
* ``lms_event_inbox``: ``(consumer_group, event_id)`` of every handled
  event; :meth:`SqlInbox.purge` forgets old ones.
* ``lms_dead_letters``: given-up events, whole, with why.

Each store takes the service's :class:`~lms_shared.db.Database` (the inbox
then runs handlers in its units of work, so a handler's own
``service.db.transaction()`` joins the inbox's) or a bare ``AsyncEngine``.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Insert,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from lms_shared.clock import Clock, SystemClock
from lms_shared.db import UtcDateTime
from lms_shared.events._dead_letters import DeadLetter, DeadLetterQuery
from lms_shared.events._errors import DeadLetterStoreUnavailable
from lms_shared.events._inbox import DuplicateDelivery, InboxEntry
from lms_shared.events._outbox import Publish
from lms_shared.events._outbox_commits import CommitTracker, Row, committed_for_good
from lms_shared.events._transport import Message
from lms_shared.observability import get_logger

__all__ = [
    "DEAD_LETTER_TABLE",
    "INBOX_TABLE",
    "OUTBOX_TABLE",
    "SqlDeadLetterStore",
    "SqlInbox",
    "SqlOutbox",
    "create_event_tables",
    "dead_letter_table",
    "event_tables",
    "inbox_table",
    "outbox_table",
]

OUTBOX_TABLE: Final = "lms_event_outbox"
INBOX_TABLE: Final = "lms_event_inbox"
DEAD_LETTER_TABLE: Final = "lms_dead_letters"

MAX_FRESH: Final = 1000
"""Committed rows kept in memory for the relay; beyond, it reads them from the table."""
_SEQ = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: the rowid


def outbox_table(metadata: MetaData, name: str = OUTBOX_TABLE) -> Table:
    """The outbox table on ``metadata`` (for the service's migrations)."""
    return Table(
        name,
        metadata,
        Column("seq", _SEQ, primary_key=True, autoincrement=True),
        Column("event_id", String(255), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("attributes", Text, nullable=False),
        Column("data", LargeBinary, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
    )


def inbox_table(metadata: MetaData, name: str = INBOX_TABLE) -> Table:
    """The inbox table on ``metadata``."""
    return Table(
        name,
        metadata,
        Column("consumer_group", String(64), primary_key=True),
        Column("event_id", String(255), primary_key=True),
        Column("handled_at", UtcDateTime, nullable=False, index=True),
    )


def dead_letter_table(metadata: MetaData, name: str = DEAD_LETTER_TABLE) -> Table:
    """The dead-letter table on ``metadata``."""
    return Table(
        name,
        metadata,
        Column("id", String(32), primary_key=True),
        Column("consumer_group", String(64), nullable=False, index=True),
        Column("handler", String(300), nullable=True),
        Column("reason", String(40), nullable=False),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("event_id", String(255), nullable=False),
        Column("event_type", String(255), nullable=False, index=True),
        Column("trace_id", String(32), nullable=True),
        Column("dead_at", UtcDateTime, nullable=False, index=True),
        Column("attributes", Text, nullable=False),
        Column("data", LargeBinary, nullable=False),
    )


def event_tables(metadata: MetaData) -> tuple[Table, Table, Table]:
    """The outbox, inbox and dead-letter tables on ``metadata``, with their default names."""
    return outbox_table(metadata), inbox_table(metadata), dead_letter_table(metadata)


class _HasEngine(Protocol):
    @property
    def engine(self) -> AsyncEngine: ...


Database = AsyncEngine | _HasEngine


def _engine(database: Database) -> AsyncEngine:
    return database if isinstance(database, AsyncEngine) else database.engine


async def create_event_tables(database: Database, metadata: MetaData | None = None) -> None:
    """Create the three tables if missing (tests, tools; services migrate)."""
    metadata = metadata or MetaData()
    if not metadata.tables:
        event_tables(metadata)
    async with _engine(database).begin() as conn:
        await conn.run_sync(lambda sync: metadata.create_all(sync, checkfirst=True))


def _insert_ignore(dialect: str, table: Table) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"the event stores support SQLite and PostgreSQL, not {dialect}")


def _after(connection: Connection, wake: Callable[[], None]) -> None:
    """``wake()`` once ``connection``'s transaction, committing now, has ended.

    A connection's ``commit`` event comes *before* the commit (SQLAlchemy
    has no event after it), and a relay woken then reads the table before
    the rows are visible: they would wait for the next sweep. So the wake
    waits, on the event loop, until the transaction is over (committed or
    failed; a failed one leaves no rows, and the relay finds none).
    """

    async def when_done() -> None:
        waited = 0.0
        while connection.in_transaction() and waited < _COMMIT_WAIT:
            await asyncio.sleep(0.001)
            waited += 0.001
        wake()

    task = asyncio.get_running_loop().create_task(when_done())
    _WAITING.add(task)
    task.add_done_callback(_WAITING.discard)


_COMMIT_WAIT = 30.0  # seconds; then the relay is woken anyway (the sweep's interval)
_WAITING: set[asyncio.Task[None]] = set()  # the tasks of _after, kept until done


def _returns_seqs(session: AsyncSession, table: Table) -> bool:
    """Whether an insert of many rows into ``table`` can return their sequence numbers in order."""
    try:
        dialect = session.get_bind(clause=insert(table)).dialect
    except SQLAlchemyError:  # no bind the session can name: the insert will tell
        return False
    return bool(dialect.insert_executemany_returning_sort_by_parameter_order)


def _attributes(message: Message) -> str:
    return orjson.dumps(dict(message.attributes)).decode()


def _message(attributes: str, data: bytes | None) -> Message:
    loaded = orjson.loads(attributes)
    if not isinstance(loaded, dict):
        raise ValueError("stored attributes are not a JSON object")
    return Message(loaded, bytes(data or b""))


class SqlOutbox:
    """The outbox in a table of the service's database.

    Args:
        database: the service's :class:`~lms_shared.db.Database` or an
            ``AsyncEngine`` (the relay reads and deletes through it).
        table: the table from :func:`outbox_table`; the default name on a
            private ``MetaData`` otherwise.
        clock: stamps ``created_at``.
    """

    def __init__(
        self, database: Database, *, table: Table | None = None, clock: Clock | None = None
    ) -> None:
        self._database = database
        self.table = table if table is not None else outbox_table(MetaData())
        self.clock: Clock = clock or SystemClock()
        self._log = get_logger("lms.events.outbox")
        self._holding = 0
        self._held: AsyncConnection | None = None
        self._held_busy = False
        self._take: str | None = None
        self._settle_sql: str | None = None
        self._wakers: WeakKeyDictionary[Session | Connection, set[Callable[[], None]]] = (
            WeakKeyDictionary()
        )
        self._unsettled: list[Row] = []
        self._settling: asyncio.Task[None] | None = None
        # rows this process committed, published from memory while the table
        # holds nothing older that memory does not know of (see relay())
        self._fresh: deque[Row] = deque()
        self._commits = CommitTracker(self._committed, self.rescan)
        self._rescans = 1  # rescans asked for; the first relay() reads the table
        self._rescanned = 0  # the last of them a table read that drained it honoured

    def rescan(self) -> None:
        """Make the next :meth:`relay` read the table, not only memory.

        The relay asks at start, at every sweep and when asked to flush: the
        table may hold rows memory does not know of (another process's, a
        crashed run's, a transaction whose savepoint rolled back).
        """
        self._rescans += 1

    def _committed(self, rows: list[Row]) -> None:
        if len(self._fresh) + len(rows) > MAX_FRESH:  # no relay keeps up: the table has them
            self._fresh.clear()
            self.rescan()
            return
        self._fresh.extend(rows)

    @property
    def engine(self) -> AsyncEngine:
        """The engine the relay goes through."""
        return _engine(self._database)

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """While entered, :meth:`relay` calls reuse one connection (closed on leaving).

        The :class:`~lms_shared.events.OutboxRelay` holds it while it is busy:
        a relay cycle then costs no pool checkout (and no pre-ping), which
        is most of its latency at a steady rate of commits. On PostgreSQL
        the held connection commits without waiting for the WAL flush
        (``synchronous_commit`` off, reset before it goes back to the pool):
        the rows are still deleted only after the broker confirmed them,
        and a database crash can at worst forget the last deletions, so
        those events are published again (the inbox absorbs them); nothing
        is lost. A connection that failed is dropped; the next call opens
        another one.
        """
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
            if not self._holding:
                await self._settled()
                await self._drop(invalidate=False)

    async def _drop(self, *, invalidate: bool) -> None:
        conn, self._held = self._held, None
        if conn is None:
            return
        try:
            if not invalidate and conn.dialect.name == "postgresql":
                try:
                    await conn.execute(text("RESET synchronous_commit"))
                    await conn.commit()
                except (SQLAlchemyError, OSError):
                    invalidate = True  # never pool it with the setting
            if invalidate:
                await conn.invalidate()
            await conn.close()
        except (SQLAlchemyError, OSError) as exc:  # it is gone either way
            self._log.debug("outbox relay connection not closed cleanly", error=str(exc)[:300])

    async def _open_held(self) -> AsyncConnection:
        conn = await self.engine.connect()
        if conn.dialect.name == "postgresql":
            try:
                await conn.execute(text("SET synchronous_commit TO off"))
                await conn.commit()
            except BaseException:
                await conn.invalidate()
                await conn.close()
                raise
        return conn

    @asynccontextmanager
    async def _relay_connection(self) -> AsyncIterator[AsyncConnection]:
        if not self._holding or self._held_busy:  # not held, or in use by an overlapping call
            async with self.engine.connect() as conn:
                yield conn
            return
        if self._held is None:
            self._held = await self._open_held()
        self._held_busy = True
        try:
            yield self._held
        except BaseException:
            await self._drop(invalidate=True)  # its state is unknown: never reuse it
            raise
        finally:
            self._held_busy = False

    async def add(
        self, tx: Any, messages: Sequence[Message], *, on_commit: Callable[[], None]
    ) -> None:
        """Insert ``messages`` in ``tx`` (an ``AsyncSession`` or ``AsyncConnection``).

        Raises:
            TypeError: ``tx`` is neither.
        """
        if not isinstance(tx, AsyncSession | AsyncConnection):
            raise TypeError(
                f"outbox= takes the transaction's AsyncSession, not {type(tx).__name__}"
            )
        now = self.clock.now()
        rows = [
            {
                "event_id": message.id,
                "event_type": message.type,
                "attributes": _attributes(message),
                "data": message.data,
                "created_at": now,
            }
            for message in messages
        ]
        if isinstance(tx, AsyncSession) and _returns_seqs(tx, self.table):
            # the sequence numbers, so the relay can publish these from memory
            taken = insert(self.table).returning(self.table.c.seq, sort_by_parameter_order=True)
            seqs = (await tx.execute(taken, rows)).scalars().all()
            self._commits.track(tx.sync_session, list(zip(seqs, messages, strict=True)), on_commit)
            return

        # rows memory does not hold: once committed, the table decides (asked
        # then, not now: a read running before the commit would not see them)
        def committed() -> None:
            self.rescan()
            on_commit()

        # per Session or Connection object: ``tx.info`` of a connection is the
        # pooled DBAPI connection's, which outlives the object a listener is on
        target: Session | Connection | None
        target = tx.sync_session if isinstance(tx, AsyncSession) else tx.sync_connection
        if target is None:
            raise TypeError("outbox= takes a connection inside its transaction")
        wakers = self._wakers.setdefault(target, set())
        if on_commit not in wakers:
            wakers.add(on_commit)
            if isinstance(target, Session):
                session = target
                event.listen(
                    session,
                    "after_commit",
                    lambda *_: committed() if committed_for_good(session) else None,
                )
            else:
                connection = target
                event.listen(connection, "commit", lambda *_: _after(connection, committed))
        await tx.execute(insert(self.table), rows)

    async def relay(self, publish: Publish, *, limit: int) -> int:
        """Publish the oldest rows, then delete them.

        Rows this process committed are published from memory (a session's
        transaction hands them over when it commits) and deleted once
        ``publish`` returned: no read stands between a commit and the
        broker. Memory is used only while the table holds no row memory
        does not know of: until a read of the table found it drained after
        the last :meth:`rescan`, and never after a failed publish (the
        rows stay in the table, read in order next time).

        Otherwise the table is read. On PostgreSQL one statement takes and
        deletes the rows (``DELETE ... RETURNING`` of rows locked ``FOR
        UPDATE SKIP LOCKED``, sent straight through asyncpg), and the
        deletion commits only after ``publish`` returned: relays of several
        instances share the work without publishing a row twice, and a
        failed publish rolls the rows back. On SQLite the rows are read,
        published, then deleted; two processes may both publish a row (the
        inbox absorbs it), as may a sweep of another instance and the
        process publishing its own rows from memory.
        """
        if self._rescanned == self._rescans:
            if not self._fresh:
                return 0
            return await self._relay_fresh(publish, limit)
        await self._settled()
        wanted = self._rescans
        count, taken = await self._relay_table(publish, limit)
        if self._fresh and taken:  # by event id: SQLite may give a deleted row's seq again
            self._fresh = deque(row for row in self._fresh if row[1].id not in taken)
        if count < limit:
            self._rescanned = wanted  # drained: what memory holds is all there is
        return count

    async def _relay_fresh(self, publish: Publish, limit: int) -> int:
        rows = [self._fresh.popleft() for _ in range(min(limit, len(self._fresh)))]
        try:
            await publish([message for _, message in rows])
        except BaseException:
            self._fresh.clear()  # in the table, read in order after the failure
            self.rescan()
            raise
        # deleted behind the relay's back: the next commit's publish need not wait for it
        self._unsettled.extend(rows)
        if self._settling is None or self._settling.done():
            self._settling = asyncio.get_running_loop().create_task(self._settle())
        return len(rows)

    async def _settle(self) -> None:
        """Delete the published rows, batch after batch, until none is left."""
        while self._unsettled:
            rows, self._unsettled = self._unsettled, []
            try:
                await self._settle_rows(rows)
            except Exception as exc:  # published but still in the table: read again
                self.rescan()
                self._log.warning("published outbox rows not deleted", error=str(exc)[:300])

    async def _settled(self) -> None:
        """Wait until every published row is deleted (before the table is read or let go)."""
        while self._settling is not None and not self._settling.done():
            await asyncio.shield(self._settling)

    async def _settle_rows(self, rows: list[Row]) -> None:
        """Delete published rows: by sequence number *and* event id.

        SQLite gives the sequence number of a deleted last row to the next
        one, so a row another process took and deleted meanwhile may have a
        successor with its number: the event id tells them apart.
        """
        seqs = [seq for seq, _ in rows]
        ids = [message.id for _, message in rows]
        t = self.table
        async with self._relay_connection() as conn:
            if conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg":
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                if self._settle_sql is None:
                    among_seqs = any_(bindparam("seqs", type_=postgresql.ARRAY(t.c.seq.type)))
                    among_ids = any_(bindparam("ids", type_=postgresql.ARRAY(t.c.event_id.type)))
                    settle = delete(t).where(t.c.seq == among_seqs, t.c.event_id == among_ids)
                    self._settle_sql = str(settle.compile(dialect=conn.dialect))
                await driver.execute(self._settle_sql, seqs, ids)
            else:
                async with conn.begin():
                    await conn.execute(delete(t).where(t.c.seq.in_(seqs), t.c.event_id.in_(ids)))

    async def _relay_table(self, publish: Publish, limit: int) -> tuple[int, set[str]]:
        async with self._relay_connection() as conn:
            if conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg":
                return await self._relay_asyncpg(conn, publish, limit)
            t = self.table
            async with conn.begin():
                rows = list((await conn.execute(select(t).order_by(t.c.seq).limit(limit))).all())
                if not rows:
                    return 0, set()
                ids = await self._publish(publish, [(r.seq, r.attributes, r.data) for r in rows])
                await conn.execute(delete(t).where(t.c.seq.in_([row.seq for row in rows])))
            return len(rows), ids

    async def _relay_asyncpg(
        self, conn: AsyncConnection, publish: Publish, limit: int
    ) -> tuple[int, set[str]]:
        # the driver itself: a third of SQLAlchemy's CPU per cycle, which is
        # the relay's latency in a busy service; SQLAlchemy has no transaction
        # open on ``conn`` meanwhile
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        if self._take is None:
            t = self.table
            oldest = select(t.c.seq).order_by(t.c.seq).limit(bindparam("limit", type_=Integer))
            taken = delete(t).where(t.c.seq.in_(oldest.with_for_update(skip_locked=True)))
            statement = taken.returning(t.c.seq, t.c.attributes, t.c.data)
            self._take = str(statement.compile(dialect=conn.dialect))  # one parameter: $1
        async with driver.transaction():
            rows = await driver.fetch(self._take, limit)
            if not rows:
                return 0, set()
            ids = await self._publish(publish, sorted((row[0], row[1], row[2]) for row in rows))
        return len(rows), ids

    async def _publish(self, publish: Publish, rows: Sequence[tuple[Any, str, Any]]) -> set[str]:
        """Publish rows read from the table; returns the ids of their events."""
        messages: list[Message] = []
        for seq, attributes, data in rows:
            try:
                messages.append(_message(attributes, data))
            except (ValueError, TypeError) as exc:
                self._log.error("unreadable outbox row removed", seq=seq, error=str(exc)[:300])
        if messages:
            await publish(messages)
        return {message.id for message in messages}

    async def pending(self) -> int:
        """How many rows wait for the relay."""
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(self.table)) or 0)


class _HasTransaction(Protocol):
    def transaction(self, *, tenant: str | None = None) -> AbstractAsyncContextManager[Any]: ...


class SqlInbox:
    """Handled events in a table of the service's database.

    With a :class:`~lms_shared.db.Database`, each handler runs in one of its
    units of work (``database.transaction(tenant=...)``, scoped to the
    event's tenant), so the handler's own ``service.db.transaction()`` and
    ``run()`` calls join it and commit with the record.

    Args:
        database: the service's database, or an ``AsyncEngine``.
        table: the table from :func:`inbox_table`.
        clock: stamps ``handled_at``.
    """

    def __init__(
        self, database: Database, *, table: Table | None = None, clock: Clock | None = None
    ) -> None:
        self._database = database
        self.table = table if table is not None else inbox_table(MetaData())
        self.clock: Clock = clock or SystemClock()

    def process(
        self, group: str, event_id: str, *, tenant: str | None = None
    ) -> AbstractAsyncContextManager[InboxEntry]:
        """See :meth:`lms_shared.events.Inbox.process` (``tx`` is an ``AsyncSession``)."""
        return self._process(group, event_id, tenant)

    @asynccontextmanager
    async def _process(
        self, group: str, event_id: str, tenant: str | None
    ) -> AsyncIterator[InboxEntry]:
        t = self.table
        where = and_(t.c.consumer_group == group, t.c.event_id == event_id)
        async with self._unit(tenant) as tx:
            if await tx.scalar(select(t.c.event_id).where(where)) is not None:
                yield InboxEntry(duplicate=True, tx=tx)
                return
            yield InboxEntry(duplicate=False, tx=tx)
            statement = _insert_ignore(tx.get_bind().dialect.name, t).values(
                consumer_group=group, event_id=event_id, handled_at=self.clock.now()
            )
            inserted = await tx.execute(statement.returning(t.c.event_id))
            if inserted.first() is None:  # a racing delivery recorded it: undo this one
                raise DuplicateDelivery(group, event_id)

    @asynccontextmanager
    async def _unit(self, tenant: str | None) -> AsyncIterator[AsyncSession]:
        database = self._database
        if isinstance(database, AsyncEngine):
            async with (
                AsyncSession(database, expire_on_commit=False) as session,
                session.begin(),
            ):
                yield session
            return
        units: _HasTransaction = database  # type: ignore[assignment]
        async with units.transaction(tenant=tenant) as session:
            yield session

    async def was_handled(self, group: str, event_id: str) -> bool:
        """Whether ``group`` has handled ``event_id``."""
        t = self.table
        async with _engine(self._database).connect() as conn:
            found = await conn.scalar(
                select(t.c.event_id).where(t.c.consumer_group == group, t.c.event_id == event_id)
            )
        return found is not None

    async def purge(self, before: datetime) -> int:
        """Forget events handled before ``before``; returns how many.

        An event redelivered after its record is gone is handled again:
        keep records longer than any redelivery can take (days).
        """
        t = self.table
        async with _engine(self._database).begin() as conn:
            result = await conn.execute(delete(t).where(t.c.handled_at < before.astimezone(UTC)))
        return int(result.rowcount or 0)


class SqlDeadLetterStore:
    """Dead letters in a table of the service's database.

    Every method raises :class:`DeadLetterStoreUnavailable` when the
    database fails (the bus then leaves the event with the broker).

    Args:
        database: the service's database, or an ``AsyncEngine``.
        table: the table from :func:`dead_letter_table`.
    """

    def __init__(self, database: Database, *, table: Table | None = None) -> None:
        self._database = database
        self.table = table if table is not None else dead_letter_table(MetaData())

    @asynccontextmanager
    async def _conn(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        engine = _engine(self._database)
        try:
            if write:
                async with engine.begin() as conn:
                    yield conn
            else:
                async with engine.connect() as conn:
                    yield conn
        except (SQLAlchemyError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            raise DeadLetterStoreUnavailable(f"the dead-letter table failed ({reason})") from exc

    async def add(self, letter: DeadLetter) -> None:
        """Keep ``letter``."""
        async with self._conn(write=True) as conn:
            await conn.execute(
                insert(self.table).values(
                    id=letter.id,
                    consumer_group=letter.group,
                    handler=letter.handler,
                    reason=letter.reason,
                    error=letter.error,
                    attempts=letter.attempts,
                    event_id=letter.event_id[:255],
                    event_type=letter.event_type[:255],
                    trace_id=letter.trace_id,
                    dead_at=letter.dead_at,
                    attributes=_attributes(letter.message),
                    data=letter.message.data,
                )
            )

    async def get(self, letter_id: str) -> DeadLetter | None:
        """The letter with this id, or ``None``."""
        async with self._conn(write=False) as conn:
            statement = select(self.table).where(self.table.c.id == letter_id)
            row = (await conn.execute(statement)).first()
        return None if row is None else _letter(row)

    async def list(
        self, query: DeadLetterQuery | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """The selected letters, oldest first."""
        if not 1 <= limit <= 10_000:
            raise ValueError("limit must be between 1 and 10000")
        if offset < 0:
            raise ValueError("offset must not be negative")
        t = self.table
        statement = (
            select(t)
            .where(*self._where(query or DeadLetterQuery()))
            .order_by(t.c.dead_at, t.c.id)
            .limit(limit)
            .offset(offset)
        )
        async with self._conn(write=False) as conn:
            rows = (await conn.execute(statement)).all()
        return [_letter(row) for row in rows]

    async def count(self, query: DeadLetterQuery | None = None) -> int:
        """How many letters ``query`` selects."""
        t = self.table
        where = self._where(query or DeadLetterQuery())
        statement = select(func.count()).select_from(t).where(*where)
        async with self._conn(write=False) as conn:
            return int(await conn.scalar(statement) or 0)

    async def delete(self, letter_ids: Sequence[str]) -> int:
        """Remove these letters; returns how many existed."""
        ids = list(dict.fromkeys(letter_ids))
        removed = 0
        async with self._conn(write=True) as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                result = await conn.execute(delete(self.table).where(self.table.c.id.in_(chunk)))
                removed += int(result.rowcount or 0)
        return removed

    async def purge(self, query: DeadLetterQuery) -> int:
        """Remove every letter ``query`` selects; returns how many."""
        async with self._conn(write=True) as conn:
            result = await conn.execute(delete(self.table).where(*self._where(query)))
        return int(result.rowcount or 0)

    def _where(self, query: DeadLetterQuery) -> builtins.list[ColumnElement[bool]]:
        t = self.table
        where: builtins.list[ColumnElement[bool]] = []
        if query.type is not None:
            where.append(t.c.event_type == query.type)
        if query.group is not None:
            where.append(t.c.consumer_group == query.group)
        if query.reason is not None:
            where.append(t.c.reason == query.reason)
        if query.since is not None:
            where.append(t.c.dead_at >= query.since)
        if query.until is not None:
            where.append(t.c.dead_at < query.until)
        if query.ids is not None:
            where.append(t.c.id.in_(list(query.ids)))
        return where


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        group=row.consumer_group,
        handler=row.handler,
        reason=row.reason,
        error=row.error,
        attempts=int(row.attempts),
        message=_message(row.attributes, row.data),
        trace_id=row.trace_id,
        dead_at=row.dead_at,
    )
