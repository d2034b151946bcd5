"""The SQL of the embedded event log: the worker-thread half of :mod:`._log`.

Everything here is synchronous and runs on the log's one worker thread,
which owns the one ``sqlite3`` connection of a :class:`~._log.LogTransport`;
the transport drives it from the event loop and batches writes into one
transaction per hop (see :meth:`LogStore.transaction`).

Tables (schema version 1, kept in ``PRAGMA user_version``):

* ``lms_log_events``, the append-only log. ``position`` is an
  ``AUTOINCREMENT`` rowid: it only grows and is never reused, even after
  retention deleted the oldest rows.
* ``lms_log_groups``, the types each group takes. Groups are durable: a
  group keeps receiving while all its processes are down.
* ``lms_log_pending``, one row per (group, event) not yet acked: the
  ``attempt`` count, ``visible_at`` (not handed out before that wall time;
  a lease or a retry delay moves it forward, so an expired lease makes the
  row visible again: the visibility timeout of SQS) and ``lease`` (the
  token of the delivery that holds it, ``NULL`` when none does).
* ``lms_log_rejected``, stored rows that could not be read back (corrupt,
  or over the size limits), taken out of their group, with the reason.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from lms_shared.events._envelope import EnvelopeLimits
from lms_shared.events._errors import InvalidEvent
from lms_shared.events._transport import Message
from lms_shared.jsonlimits import JsonLimitError, load_json

__all__ = [
    "SCHEMA_VERSION",
    "Claimed",
    "LogStore",
    "RejectedEntry",
    "StoredEventUnreadable",
    "encode",
]

SCHEMA_VERSION = 1
_MAX_REJECTED = 1000  # per claim: the write lock is not held for a whole corrupt file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lms_log_events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    key TEXT,
    attributes BLOB NOT NULL,
    data BLOB NOT NULL,
    stored_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS lms_log_events_stored ON lms_log_events (stored_at);
CREATE TABLE IF NOT EXISTS lms_log_groups (
    type TEXT NOT NULL,
    grp TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (type, grp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lms_log_pending (
    grp TEXT NOT NULL,
    position INTEGER NOT NULL,
    type TEXT NOT NULL,
    key TEXT,
    attempt INTEGER NOT NULL,
    visible_at REAL NOT NULL,
    lease INTEGER,
    PRIMARY KEY (grp, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lms_log_pending_key
    ON lms_log_pending (grp, key, position) WHERE key IS NOT NULL;
CREATE TABLE IF NOT EXISTS lms_log_rejected (
    grp TEXT NOT NULL,
    position INTEGER NOT NULL,
    reason TEXT NOT NULL,
    rejected_at REAL NOT NULL,
    PRIMARY KEY (grp, position)
) WITHOUT ROWID;
"""

# a row is handed out when it is visible (never leased, lease expired, retry
# delay over) and, with a key, no earlier row of that key is pending in the
# group and no row of that key is under a live lease (order per key); without
# statistics the planner would scan the group's rows for that check
_CLAIM = """
SELECT p.position, p.attempt, e.position IS NULL,
       length(e.attributes) + length(e.data) <= :max_bytes,
       CASE WHEN length(e.attributes) + length(e.data) <= :max_bytes THEN e.attributes END,
       CASE WHEN length(e.attributes) + length(e.data) <= :max_bytes THEN e.data END
FROM lms_log_pending p LEFT JOIN lms_log_events e ON e.position = p.position
WHERE p.grp = :grp AND +p.visible_at <= :now AND p.type IN ({types})
  AND (p.key IS NULL OR NOT EXISTS (
        SELECT 1 FROM lms_log_pending q INDEXED BY lms_log_pending_key
        WHERE q.grp = p.grp AND q.key IS NOT NULL AND q.key = p.key
          AND q.position <> p.position
          AND q.type IN ({types})
          AND (q.position < p.position OR (q.lease IS NOT NULL AND q.visible_at > :now))))
ORDER BY p.position
LIMIT :limit
"""
_NEXT_DUE = """
SELECT min(visible_at) FROM lms_log_pending
WHERE grp = ? AND type IN ({types}) AND visible_at > ?
"""
_REWIND = """
INSERT INTO lms_log_pending (grp, position, type, key, attempt, visible_at, lease)
SELECT ?, position, type, key, 0, ?, NULL FROM lms_log_events
WHERE type IN ({types}) AND position >= ? AND stored_at >= ?
ON CONFLICT (grp, position) DO UPDATE SET attempt = 0, visible_at = excluded.visible_at,
    lease = NULL
"""


class StoredEventUnreadable(InvalidEvent):
    """A stored row of the log is not a readable event (corrupt or over the limits).

    The consumer does not crash: the row leaves its group's queue and is
    listed by :meth:`~lms_shared.events.LogTransport.rejected` with this
    reason; :meth:`~lms_shared.events.LogTransport.read` raises it.

    Attributes:
        position: the row's position in the log.
    """

    def __init__(self, reason: str, *, position: int) -> None:
        self.position = position
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    """A stored row a group could not read, taken out of its queue.

    Attributes:
        group: the group that met it.
        position: its position in the log.
        reason: why it could not be read.
        rejected_at: when.
    """

    group: str
    position: str
    reason: str
    rejected_at: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    """One row handed out by :meth:`LogStore.claim`."""

    position: int
    attempt: int
    message: Message


def encode(message: Message) -> tuple[str, str | None, bytes, bytes]:
    """The stored columns of ``message``: type, key, attributes JSON, data."""
    return message.type, message.key, orjson.dumps(dict(message.attributes)), message.data


def decode(position: int, attributes: object, data: object, limits: EnvelopeLimits) -> Message:
    """Read a stored row back into a :class:`Message`, within ``limits``.

    Raises:
        StoredEventUnreadable: wrong column types, more than ``max_bytes``,
            malformed or nested attributes, or not a valid message.
    """

    def unreadable(why: str) -> StoredEventUnreadable:
        return StoredEventUnreadable(f"stored event {position} {why}", position=position)

    if isinstance(attributes, str):
        attributes = attributes.encode("utf-8", "surrogatepass")
    if not isinstance(attributes, bytes) or not isinstance(data, bytes):
        raise unreadable("has attributes or data of the wrong type")
    if len(attributes) + len(data) > limits.max_bytes:
        raise unreadable(f"is larger than {limits.max_bytes} bytes")
    try:
        parsed = load_json(attributes, max_bytes=limits.max_bytes, max_depth=1)
    except JsonLimitError as exc:
        raise unreadable(f"has unreadable attributes: {exc}") from None
    if not isinstance(parsed, dict):
        raise unreadable("has attributes that are not a JSON object")
    if len(parsed) > limits.max_attributes:
        raise unreadable(f"has more than {limits.max_attributes} attributes")
    try:
        return Message(parsed, data)
    except InvalidEvent as exc:
        raise unreadable(f"is not a valid message: {exc.reason}") from None


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class LogStore:
    """The log's connection and statements (use it from one thread only).

    Args:
        path: the SQLite file (created with its folder by :meth:`open`).
        busy_timeout: seconds to wait for another process's write lock.
        synchronous: ``NORMAL`` (survives a crashed process; the default)
            or ``FULL`` (also survives a power cut; an fsync per commit).
        limits: the bounds of a stored event read back.
    """

    def __init__(
        self, path: Path, *, busy_timeout: float, synchronous: str, limits: EnvelopeLimits
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self.limits = limits
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection.

        Raises:
            sqlite3.ProgrammingError: the store is not open.
        """
        if self._db is None:
            raise sqlite3.ProgrammingError("the event log is not open")
        return self._db

    def open(self) -> None:
        """Open (and create) the file in WAL mode and create the tables.

        Raises:
            OSError: the folder cannot be made.
            sqlite3.Error: the file cannot be opened or is not ours.
        """
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"the event log has schema version {version}; this code reads "
                    f"{SCHEMA_VERSION} (upgrade lms-shared)"
                )
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        self._db = db

    def close(self) -> None:
        """Close the connection (idempotent)."""
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def transaction(self, work: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        """Run every piece of ``work`` in one write transaction, each in a savepoint.

        Returns one entry per piece: its result, or the exception it raised
        (that piece is rolled back, the others commit).

        Raises:
            sqlite3.Error: the transaction itself failed (busy past the
                timeout, disk full, corrupt file); nothing was committed.
        """
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        results: list[Any] = []
        try:
            for piece in work:
                db.execute("SAVEPOINT piece")
                try:
                    result = piece(db)
                except Exception as exc:
                    db.execute("ROLLBACK TO piece")
                    result = exc
                db.execute("RELEASE piece")
                results.append(result)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results

    # -- reads (autocommit) ------------------------------------------------

    def data_version(self) -> int:
        """Changes when another connection (another process) committed."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def ping(self) -> None:
        """Read the tables once."""
        self.db.execute("SELECT 1 FROM lms_log_groups LIMIT 1").fetchall()

    def read(self, position: int) -> Message | None:
        """The stored event at ``position``; ``None`` when it is not retained.

        Raises:
            StoredEventUnreadable: the row is corrupt or over the limits.
        """
        row = self.db.execute(
            "SELECT length(attributes) + length(data) <= ?, "
            "CASE WHEN length(attributes) + length(data) <= ? THEN attributes END, "
            "CASE WHEN length(attributes) + length(data) <= ? THEN data END "
            "FROM lms_log_events WHERE position = ?",
            (self.limits.max_bytes,) * 3 + (position,),
        ).fetchone()
        if row is None:
            return None
        if not row[0]:
            raise StoredEventUnreadable(
                f"stored event {position} is larger than {self.limits.max_bytes} bytes",
                position=position,
            )
        return decode(position, row[1], row[2], self.limits)

    def rejected(self, limit: int) -> list[RejectedEntry]:
        """The newest rejected rows, newest first."""
        rows = self.db.execute(
            "SELECT grp, position, reason, rejected_at FROM lms_log_rejected "
            "ORDER BY rejected_at DESC, position DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            RejectedEntry(str(g), str(p), str(r), datetime.fromtimestamp(float(t), UTC))
            for g, p, r, t in rows
        ]

    def sequence(self) -> int:
        """The highest position ever stored (0 for a new log)."""
        row = self.db.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'lms_log_events'"
        ).fetchone()
        return int(row[0]) if row else 0

    # -- writes (inside :meth:`transaction`) --------------------------------

    @staticmethod
    def append(
        db: sqlite3.Connection, rows: Sequence[tuple[str, str | None, bytes, bytes]], now: float
    ) -> None:
        """Append encoded events and queue each for every group taking its type."""
        before = db.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'lms_log_events'"
        ).fetchone()
        db.executemany(
            "INSERT INTO lms_log_events (type, key, attributes, data, stored_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(*row, now) for row in rows],
        )
        db.execute(
            "INSERT INTO lms_log_pending (grp, position, type, key, attempt, visible_at) "
            "SELECT g.grp, e.position, e.type, e.key, 0, e.stored_at "
            "FROM lms_log_events e JOIN lms_log_groups g ON g.type = e.type "
            "WHERE e.position > ?",
            (before[0] if before else 0,),
        )

    @staticmethod
    def join(db: sqlite3.Connection, group: str, types: Sequence[str], now: float) -> None:
        """Make ``group`` take ``types`` from now on (durably)."""
        db.executemany(
            "INSERT OR IGNORE INTO lms_log_groups (type, grp, created_at) VALUES (?, ?, ?)",
            [(t, group, now) for t in types],
        )

    def claim(
        self,
        db: sqlite3.Connection,
        group: str,
        types: Sequence[str],
        *,
        limit: int,
        now: float,
        lease_until: float,
        token: int,
    ) -> tuple[list[Claimed], list[StoredEventUnreadable], float | None]:
        """Lease up to ``limit`` visible rows of ``group``, oldest first.

        Returns the claimed rows, the rows rejected on the way (taken out
        of the group, at most 1,000 a claim), and the earliest time a row of these types becomes
        visible (``None`` when none is waiting), which is computed only when
        fewer than ``limit`` rows were claimed.
        """
        marks = _marks(len(types))
        params: dict[str, Any] = {f"t{i}": t for i, t in enumerate(types)}
        named = ", ".join(f":t{i}" for i in range(len(types)))
        params.update(grp=group, now=now, max_bytes=self.limits.max_bytes)
        claimed: list[Claimed] = []
        rejected: list[StoredEventUnreadable] = []
        while True:  # again after rejected rows, which are gone from the queue now
            want = limit - len(claimed)
            rows = db.execute(_CLAIM.format(types=named), {**params, "limit": want}).fetchall()
            took, refused = self._read_claimed(rows)
            db.executemany(
                "UPDATE lms_log_pending SET attempt = attempt + 1, visible_at = ?, lease = ? "
                "WHERE grp = ? AND position = ?",
                [(lease_until, token, group, c.position) for c in took],
            )
            if refused:
                db.executemany(
                    "DELETE FROM lms_log_pending WHERE grp = ? AND position = ?",
                    [(group, r.position) for r in refused],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO lms_log_rejected (grp, position, reason, rejected_at) "
                    "VALUES (?, ?, ?, ?)",
                    [(group, r.position, r.reason, now) for r in refused],
                )
            claimed += took
            rejected += refused
            if not refused or len(claimed) >= limit or len(rejected) >= _MAX_REJECTED:
                break
        next_due: float | None = None
        if len(rows) < want:
            row = db.execute(_NEXT_DUE.format(types=marks), (group, *types, now)).fetchone()
            next_due = row[0] if row and row[0] is not None else None
        return claimed, rejected, next_due

    def _read_claimed(self, rows: list[Any]) -> tuple[list[Claimed], list[StoredEventUnreadable]]:
        took: list[Claimed] = []
        refused: list[StoredEventUnreadable] = []
        for position, attempt, missing, fits, attributes, data in rows:
            try:
                if missing:
                    raise StoredEventUnreadable(
                        f"stored event {position} is missing from the log", position=position
                    )
                if not fits:
                    raise StoredEventUnreadable(
                        f"stored event {position} is larger than {self.limits.max_bytes} bytes",
                        position=position,
                    )
                message = decode(position, attributes, data, self.limits)
            except StoredEventUnreadable as exc:
                refused.append(exc)
                continue
            took.append(Claimed(position, attempt + 1, message))
        return took, refused

    @staticmethod
    def settle(
        db: sqlite3.Connection,
        acks: Sequence[tuple[str, int, int]],
        delays: Sequence[tuple[float, str, int, int]],
    ) -> None:
        """Delete acked rows; make retried (or released) rows visible at a time.

        ``acks`` are (group, position, lease); ``delays`` are (visible_at,
        group, position, lease). A row leased again since (an expired lease
        another member took) has another lease token and is left alone.
        """
        if acks:
            db.executemany(
                "DELETE FROM lms_log_pending WHERE grp = ? AND position = ? AND lease = ?", acks
            )
        if delays:
            db.executemany(
                "UPDATE lms_log_pending SET visible_at = ?, lease = NULL "
                "WHERE grp = ? AND position = ? AND lease = ?",
                delays,
            )

    @staticmethod
    def rewind(
        db: sqlite3.Connection,
        group: str,
        types: Sequence[str],
        *,
        start: int,
        since: float,
        now: float,
    ) -> int:
        """Queue the retained events of ``types`` from a point on for ``group`` again."""
        cursor = db.execute(
            _REWIND.format(types=_marks(len(types))), (group, now, *types, start, since)
        )
        return cursor.rowcount

    def trim(
        self,
        db: sqlite3.Connection,
        *,
        now: float,
        max_age: float | None,
        max_rows: int | None,
        chunk: int,
    ) -> tuple[int, int, bool]:
        """Delete up to ``chunk`` of the oldest events past the retention limits.

        Returns the events deleted, the pending deliveries dropped with them
        (groups that had not acked them yet), and whether more are due.
        """
        bound = 0
        if max_rows is not None:
            bound = self.sequence() - max_rows
        if max_age is not None:
            row = db.execute(
                "SELECT max(position) FROM lms_log_events WHERE stored_at < ?", (now - max_age,)
            ).fetchone()
            bound = max(bound, int(row[0] or 0))
        first = db.execute("SELECT min(position) FROM lms_log_events").fetchone()[0]
        if first is None or bound < first:
            return 0, 0, False
        upto = min(bound, first + chunk - 1)
        dropped = 0
        group = ""
        while True:  # every group with pending rows, through the primary key
            row = db.execute(
                "SELECT grp FROM lms_log_pending WHERE grp > ? ORDER BY grp LIMIT 1", (group,)
            ).fetchone()
            if row is None:
                break
            group = row[0]
            dropped += db.execute(
                "DELETE FROM lms_log_pending WHERE grp = ? AND position <= ?", (group, upto)
            ).rowcount
        db.execute("DELETE FROM lms_log_rejected WHERE position <= ?", (upto,))
        deleted = db.execute("DELETE FROM lms_log_events WHERE position <= ?", (upto,)).rowcount
        return deleted, dropped, upto < bound
