"""The embedded log store: every service's log lines in one SQLite file of the state folder.

With ``LMS_TELEMETRY_URL`` unset, each process's lines also go to
``<state_dir>/telemetry/logs.sqlite3``, so ``lms-shared logs --trace T``
finds one request's lines across every service of the demo.

Why one SQLite file rather than JSON-lines files per service: the search
is by trace id, request id, service, level and time *across* services, in
one file. The processes of one machine write it at the same time safely
(WAL, ``BEGIN IMMEDIATE``, a busy timeout).

Why a row per *batch* of lines rather than per line: the lines are written
on every request, the search is a person at ``lms-shared logs``. A row per
line cost about 5 µs of the shipping thread's CPU per line (ten bound
parameters, a B-tree insert, its indexes), a sizeable part of a served
request; a batch of one service's lines is one row whose body is one
JSON array (one ``orjson.dumps``): well under 2 µs a line. A search reads
the batches of the services and times asked for, newest first, skips a
batch whose body does not contain the trace or request id asked for (a
byte search), and parses the rest. Its size is bounded by pruning whole
batches in the same transaction as each write (the newest
:data:`DEFAULT_MAX_LINES` lines, each at most :data:`MAX_LINE_BYTES`; older
lines of a batch kept for its newer ones are never returned) instead of
file rotation, which races when several processes rotate one folder.
Files of the row-per-line layout (development data) are dropped.

The store is written only by the :class:`~._logship.LogShipper`'s
background thread, in batches, never on the event loop or the thread
that logged.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson

__all__ = [
    "DEFAULT_MAX_LINES",
    "LEVELS",
    "MAX_LINE_BYTES",
    "LogEntry",
    "LogStore",
    "StoredLog",
    "severity_of",
]

DEFAULT_MAX_LINES = 100_000
MAX_LINE_BYTES = 16 * 1024
LEVELS: dict[str, int] = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "error": 40,
    "critical": 50,
}
_ALIASES = {"warn": "warning", "exception": "error", "fatal": "critical", "notset": "debug"}
_SCHEMA = """
DROP TABLE IF EXISTS logs;
CREATE TABLE IF NOT EXISTS log_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    first_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    upto INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_batches_by_upto ON log_batches (upto);
"""
# a batch's body: one JSON array of rows, each
# [ts_ns, severity, level, logger, event, trace_id, span_id, request_id, line]
_TS, _SEVERITY, _LEVEL, _LOGGER, _EVENT, _TRACE, _SPAN, _REQUEST, _LINE = range(9)
# the batches a search reads, newest first; "? IS NULL" switches a filter off,
# services as ",a,b,"
_SEARCH = """
SELECT service, upto, lines, body FROM log_batches
WHERE (? IS NULL OR instr(?, ',' || service || ',') > 0)
  AND (? IS NULL OR last_ns >= ?)
  AND (? IS NULL OR first_ns < ?)
ORDER BY id DESC
"""


def severity_of(level: str) -> int:
    """The numeric severity of a level name (``warning`` -> 30; unknown names: info)."""
    name = level.lower()
    return LEVELS.get(_ALIASES.get(name, name), LEVELS["info"])


class LogEntry(NamedTuple):
    """One log line on its way to the store or the collector.

    A named tuple: one is made per line on the logging thread, and a frozen
    dataclass took 1.3 µs to build against 0.6.

    Attributes:
        ts_ns: when it was written (Unix nanoseconds).
        level: its level name.
        service: the service that wrote it.
        logger: its ``logger_name``.
        event: its ``event`` (the message).
        trace_id: the trace it was written in (32 hex digits).
        span_id: the span it was written in (16 hex digits).
        request_id: the request it was written for.
        line: the whole line, as JSON.
    """

    ts_ns: int
    level: str
    service: str
    logger: str | None
    event: str | None
    trace_id: str | None
    span_id: str | None
    request_id: str | None
    line: str


@dataclass(frozen=True, slots=True)
class StoredLog:
    """One line found in the store.

    Attributes:
        id: its position in the store (later lines have larger ids).
        fields: the whole line as written (``event``, ``level``, bound keys...).
    """

    id: int
    ts_ns: int
    service: str
    level: str
    logger: str | None
    event: str | None
    trace_id: str | None
    span_id: str | None
    request_id: str | None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def time(self) -> datetime:
        """When the line was written (UTC)."""
        return datetime.fromtimestamp(self.ts_ns / 1e9, UTC)


def _bounded(entry: LogEntry) -> str:
    """The line to store: as written, or its indexed fields when it is too long."""
    if len(entry.line) <= MAX_LINE_BYTES:
        return entry.line
    short = {
        "event": (entry.event or "")[:1024],
        "level": entry.level,
        "service": entry.service,
        "logger_name": entry.logger,
        "trace_id": entry.trace_id,
        "span_id": entry.span_id,
        "request_id": entry.request_id,
        "truncated": len(entry.line),
    }
    return orjson.dumps({k: v for k, v in short.items() if v is not None}).decode()


class LogStore:
    """The log lines of one SQLite file.

    Args:
        path: the database file (made with its folder on first write).
        max_lines: the newest lines kept.
    """

    def __init__(self, path: Path, *, max_lines: int = DEFAULT_MAX_LINES) -> None:
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self.path = Path(path)
        self.max_lines = max_lines
        self._local = threading.local()

    @classmethod
    def in_state_dir(cls, state_dir: Path | str, **options: Any) -> LogStore:
        """The store of a state folder (``<state_dir>/telemetry/logs.sqlite3``)."""
        return cls(Path(state_dir) / "telemetry" / "logs.sqlite3", **options)

    def _connect(self) -> sqlite3.Connection:
        found: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if found is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            found = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            found.execute("PRAGMA journal_mode=WAL")
            found.execute("PRAGMA synchronous=NORMAL")
            found.executescript(_SCHEMA)
            self._local.conn = found
        return found

    def add(self, entries: Sequence[LogEntry]) -> None:
        """Keep ``entries`` (a batch per service), drop the oldest lines beyond :attr:`max_lines`.

        Raises:
            sqlite3.Error: the file is locked for longer than the busy timeout, or broken.
        """
        if not entries:
            return
        by_service: dict[str, list[list[Any]]] = {}
        for e in entries:
            by_service.setdefault(e.service, []).append(
                [
                    e.ts_ns,
                    severity_of(e.level),
                    e.level,
                    e.logger,
                    e.event if e.event is None else e.event[:1024],
                    e.trace_id,
                    e.span_id,
                    e.request_id,
                    _bounded(e),
                ]
            )
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            upto = self._upto(conn)
            for service, rows in by_service.items():
                upto += len(rows)
                stamps = [row[_TS] for row in rows]
                conn.execute(
                    "INSERT INTO log_batches (service, first_ns, last_ns, lines, upto, body) "
                    "VALUES (?,?,?,?,?,?)",
                    (service, min(stamps), max(stamps), len(rows), upto, orjson.dumps(rows)),
                )
            # a batch goes once every one of its lines is older than the newest max_lines
            conn.execute("DELETE FROM log_batches WHERE upto <= ?", (upto - self.max_lines,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _upto(conn: sqlite3.Connection) -> int:
        """Lines written so far (the newest batch's running count)."""
        found = conn.execute("SELECT upto FROM log_batches ORDER BY id DESC LIMIT 1").fetchone()
        return int(found[0]) if found else 0

    def search(
        self,
        *,
        services: Sequence[str] = (),
        trace_id: str | None = None,
        request_id: str | None = None,
        level: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
    ) -> list[StoredLog]:
        """The newest ``limit`` lines matching every filter given, oldest first.

        Args:
            services: lines of these services only (empty: every service).
            trace_id: lines written inside this trace.
            request_id: lines written for this request.
            level: lines at this level or above (``warning`` includes ``error``).
            since_ns: lines written at or after this time (Unix nanoseconds).
            until_ns: lines written before this time.
            limit: lines at most.
        """
        if not self.path.exists() or limit <= 0:
            return []  # nothing was written yet; do not create the file
        trace = trace_id.lower() if trace_id else None
        minimum = severity_of(level) if level else 0
        # as the body writes them: JSON strings (a quote or backslash escaped), UTF-8
        needles = [orjson.dumps(n)[1:-1] for n in (trace, request_id) if n]
        conn = self._connect()
        oldest = self._upto(conn) - self.max_lines  # lines up to this one are pruned
        names = "," + ",".join(services) + "," if services else None
        batches = conn.execute(_SEARCH, (names, names, since_ns, since_ns, until_ns, until_ns))
        found: list[StoredLog] = []
        for service, upto, lines, body in batches:
            if any(needle not in body for needle in needles):
                continue  # a byte search spares parsing the batch
            first = upto - lines  # the line number before this batch's first
            for index, row in reversed(list(enumerate(orjson.loads(body), start=first + 1))):
                if index <= oldest:  # pruned, and so is every older line
                    return found[::-1]
                if row[_SEVERITY] < minimum:
                    continue
                if (trace is not None and row[_TRACE] != trace) or (
                    request_id is not None and row[_REQUEST] != request_id
                ):
                    continue
                ts = row[_TS]
                if (since_ns is not None and ts < since_ns) or (
                    until_ns is not None and ts >= until_ns
                ):
                    continue
                found.append(self._stored(index, service, row))
                if len(found) >= limit:
                    return found[::-1]
        return found[::-1]

    def services(self) -> list[str]:
        """The services with lines in the store."""
        if not self.path.exists():
            return []
        rows = self._connect().execute("SELECT DISTINCT service FROM log_batches ORDER BY service")
        return [row[0] for row in rows]

    def count(self) -> int:
        """Lines in the store."""
        if not self.path.exists():
            return 0
        found = self._connect().execute("SELECT COALESCE(SUM(lines), 0) FROM log_batches")
        return min(int(found.fetchone()[0]), self.max_lines)

    @staticmethod
    def _stored(index: int, service: str, row: list[Any]) -> StoredLog:
        try:
            fields = orjson.loads(row[_LINE])
        except orjson.JSONDecodeError:
            fields = {}
        return StoredLog(
            id=index,
            ts_ns=row[_TS],
            service=service,
            level=row[_LEVEL],
            logger=row[_LOGGER],
            event=row[_EVENT],
            trace_id=row[_TRACE],
            span_id=row[_SPAN],
            request_id=row[_REQUEST],
            fields=fields if isinstance(fields, dict) else {},
        )

    def close(self) -> None:
        """Close this thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
