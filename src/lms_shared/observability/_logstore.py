"""The embedded log store: every service's log lines in one SQLite file of the state folder.

With ``LMS_TELEMETRY_URL`` unset, each process's lines also go to
``<state_dir>/telemetry/logs.sqlite3``, so ``lms-shared logs --trace T``
finds one request's lines across every service of the demo.

Why one SQLite file rather than JSON-lines files per service: the search
is by trace id, request id, service, level and time *across* services, in
one query over one file. Only time and service are indexed (both appended
in order): an index on trace or request ids (random keys) cost about 30 µs
more per line once the file held 50,000 lines, each insert and each pruned
row dirtying other pages, and the lines are written on every request while
a search is a person at ``lms-shared logs``; a search by trace or request
id scans (within ``--since``/``--until`` when given), tens of milliseconds
at the bound. The
processes of one machine write it at the same time safely (WAL, ``BEGIN
IMMEDIATE``, a busy timeout), and its size is bounded by pruning in the
same transaction as each batch (the newest :data:`DEFAULT_MAX_LINES`
lines, each at most :data:`MAX_LINE_BYTES`; SQLite reuses the freed pages)
instead of file rotation, which races when several processes rotate one
folder. It is the span store's layout (``spans.sqlite3`` beside it).

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
from typing import Any

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
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ns INTEGER NOT NULL,
    service TEXT NOT NULL,
    level TEXT NOT NULL,
    severity INTEGER NOT NULL,
    logger TEXT,
    event TEXT,
    trace_id TEXT,
    span_id TEXT,
    request_id TEXT,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_time ON logs (ts_ns);
CREATE INDEX IF NOT EXISTS logs_by_service ON logs (service, ts_ns);
DROP INDEX IF EXISTS logs_by_trace;
DROP INDEX IF EXISTS logs_by_request;
"""
# one fixed statement; "? IS NULL" switches a filter off, services as ",a,b,"
_SEARCH = """
SELECT id, ts_ns, service, level, logger, event, trace_id, span_id, request_id, line
FROM logs
WHERE (? IS NULL OR instr(?, ',' || service || ',') > 0)
  AND (? IS NULL OR trace_id = ?)
  AND (? IS NULL OR request_id = ?)
  AND severity >= ?
  AND (? IS NULL OR ts_ns >= ?)
  AND (? IS NULL OR ts_ns < ?)
ORDER BY id DESC LIMIT ?
"""


def severity_of(level: str) -> int:
    """The numeric severity of a level name (``warning`` -> 30; unknown names: info)."""
    name = level.lower()
    return LEVELS.get(_ALIASES.get(name, name), LEVELS["info"])


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log line on its way to the store or the collector.

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
        """Keep ``entries`` and drop the oldest lines beyond :attr:`max_lines`.

        Raises:
            sqlite3.Error: the file is locked for longer than the busy timeout, or broken.
        """
        if not entries:
            return
        rows = [
            (
                e.ts_ns,
                e.service,
                e.level,
                severity_of(e.level),
                e.logger,
                e.event if e.event is None else e.event[:1024],
                e.trace_id,
                e.span_id,
                e.request_id,
                _bounded(e),
            )
            for e in entries
        ]
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO logs (ts_ns, service, level, severity, logger, event, trace_id, "
                "span_id, request_id, line) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            # ids only grow (AUTOINCREMENT): the newest max_lines are the top ids
            conn.execute(
                "DELETE FROM logs WHERE id <= (SELECT MAX(id) FROM logs) - ?", (self.max_lines,)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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
        if not self.path.exists():
            return []  # nothing was written yet; do not create the file
        names = "," + ",".join(services) + "," if services else None
        trace = trace_id.lower() if trace_id else None
        args = (
            names,
            names,
            trace,
            trace,
            request_id,
            request_id,
            severity_of(level) if level else 0,
            since_ns,
            since_ns,
            until_ns,
            until_ns,
            max(0, limit),
        )
        rows = self._connect().execute(_SEARCH, args).fetchall()
        return [self._stored(row) for row in reversed(rows)]

    def services(self) -> list[str]:
        """The services with lines in the store."""
        if not self.path.exists():
            return []
        rows = self._connect().execute("SELECT DISTINCT service FROM logs ORDER BY service")
        return [row[0] for row in rows]

    def count(self) -> int:
        """Lines in the store."""
        if not self.path.exists():
            return 0
        return int(self._connect().execute("SELECT COUNT(*) FROM logs").fetchone()[0])

    @staticmethod
    def _stored(row: tuple[Any, ...]) -> StoredLog:
        try:
            fields = orjson.loads(row[9])
        except orjson.JSONDecodeError:
            fields = {}
        return StoredLog(
            id=row[0],
            ts_ns=row[1],
            service=row[2],
            level=row[3],
            logger=row[4],
            event=row[5],
            trace_id=row[6],
            span_id=row[7],
            request_id=row[8],
            fields=fields if isinstance(fields, dict) else {},
        )

    def close(self) -> None:
        """Close this thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
