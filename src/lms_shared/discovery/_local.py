"""The embedded registry: one SQLite file shared by the processes of a machine.

Each entry carries an expiry (wall time of the injected clock, so every
process of the machine agrees); a heartbeat moves it forward. Expired
entries are invisible at once and purged by the next poll. Watchers poll
a change counter, which every visible change (write, delete, purge)
increments, so an idle poll is two indexed reads.

stdlib ``sqlite3`` runs in worker threads (``asyncio.to_thread``), one
connection serialised by a lock: every statement is a short transaction,
and WAL lets the other processes read while one writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import orjson

from lms_shared.clock import Clock
from lms_shared.discovery._errors import (
    DiscoveryConfigError,
    InvalidRegistryData,
    RegistryUnavailable,
)
from lms_shared.discovery._instance import (
    Instance,
    check_service_name,
    decode_json,
    instance_from_record,
    instance_to_record,
)
from lms_shared.discovery._registry import BackendOptions, Registration, sleep_unless_stopped
from lms_shared.observability import get_logger

__all__ = ["LocalRegistry"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lms_instances (
    service TEXT NOT NULL,
    id TEXT NOT NULL,
    record TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (service, id)
);
CREATE INDEX IF NOT EXISTS lms_instances_expiry ON lms_instances (expires_at);
CREATE TABLE IF NOT EXISTS lms_registry_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO lms_registry_meta VALUES ('changes', 0);
"""
_BUMP = "UPDATE lms_registry_meta SET value = value + 1 WHERE name = 'changes'"


class LocalRegistry:
    """Instances in a SQLite file under the state folder, with expiring entries.

    Args:
        path: the SQLite file (created with its folder at :meth:`start`).
        clock: expiry, heartbeats and polls run on it.
        poll_interval: seconds between a watcher's polls.
        timeout: seconds to wait for another process's write lock.
    """

    name = "local"
    read_only = False

    def __init__(
        self, path: Path, *, clock: Clock, poll_interval: float = 2.0, timeout: float = 5.0
    ) -> None:
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        self.path = Path(path)
        self.where = str(self.path)
        self._clock = clock
        self.poll_interval = poll_interval
        self._timeout = timeout
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._stopped = asyncio.Event()
        self._registrations: set[Registration] = set()
        self._log = get_logger("lms.discovery", backend="local")

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> LocalRegistry:
        """``local://`` (``<state_dir>/discovery.sqlite3``) or ``local:///path/file.sqlite3``."""
        path_text = url.split("://", 1)[1].partition("?")[0]
        path = Path(path_text) if path_text else options.state_dir / "discovery.sqlite3"
        if path_text and not path.is_absolute():
            raise DiscoveryConfigError("local:///path needs an absolute path (three slashes)")
        registry = cls(
            path,
            clock=options.clock,
            poll_interval=options.seconds("poll", options.poll_interval),
            timeout=options.seconds("timeout", options.timeout),
        )
        options.finish("local")
        return registry

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Create the folder and file (WAL) and the tables."""
        if self._db is not None:
            return
        self._stopped.clear()
        self._db = await self._call(self._open)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    async def stop(self) -> None:
        """End running watches, stop keepalives (entries then expire) and close the file."""
        for registration in list(self._registrations):
            await registration.stop_keepalive()  # entries expire on their own
        self._registrations.clear()
        self._stopped.set()
        await self._call(self._close)

    def _close(self) -> None:
        # under the lock: a worker thread may still be using the connection
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                db.close()

    async def ping(self) -> None:
        """Read the change counter.

        Raises:
            RegistryUnavailable: the file cannot be read.
        """
        await self._changes()

    # -- writes ----------------------------------------------------------

    async def register(self, instance: Instance, *, ttl: float) -> Registration:
        """Store ``instance`` until ``now + ttl`` and renew it every ``ttl / 3``."""
        if instance.registered_at is None:
            instance = replace(instance, registered_at=self._clock.now())
        registration = Registration(
            instance,
            ttl=ttl,
            clock=self._clock,
            renew=self._renew,
            update=self._update,
            release=self._release,
        )
        await self._put(instance, ttl)
        registration.start_keepalive()
        self._registrations.add(registration)
        return registration

    async def deregister(self, instance: Instance) -> None:
        """Delete the entry of ``instance`` (service and id)."""
        await self._write(self._delete_sql, instance.service, instance.id)

    async def _put(self, instance: Instance, ttl: float) -> None:
        record = orjson.dumps(instance_to_record(instance)).decode()
        expires = self._clock.now().timestamp() + ttl
        await self._write(self._put_sql, instance.service, instance.id, record, expires)

    async def _renew(self, registration: Registration) -> None:
        expires = self._clock.now().timestamp() + registration.ttl
        instance = registration.instance
        found = await self._write(self._renew_sql, instance.service, instance.id, expires)
        if not found:
            self._log.warning("registration had expired; registering again", instance=instance.key)
            await self._put(instance, registration.ttl)

    async def _update(self, registration: Registration, instance: Instance) -> None:
        await self._put(instance, registration.ttl)

    async def _release(self, registration: Registration) -> None:
        self._registrations.discard(registration)
        await self.deregister(registration.instance)

    def _put_sql(
        self, db: sqlite3.Connection, service: str, id_: str, rec: str, exp: float
    ) -> bool:
        db.execute(
            "INSERT OR REPLACE INTO lms_instances VALUES (?, ?, ?, ?)", (service, id_, rec, exp)
        )
        db.execute(_BUMP)
        return True

    def _renew_sql(self, db: sqlite3.Connection, service: str, id_: str, expires: float) -> bool:
        cursor = db.execute(
            "UPDATE lms_instances SET expires_at = ? WHERE service = ? AND id = ? "
            "AND expires_at > ?",
            (expires, service, id_, self._clock.now().timestamp()),
        )
        return cursor.rowcount > 0

    def _delete_sql(self, db: sqlite3.Connection, service: str, id_: str) -> bool:
        cursor = db.execute(
            "DELETE FROM lms_instances WHERE service = ? AND id = ?", (service, id_)
        )
        if cursor.rowcount:
            db.execute(_BUMP)
        return cursor.rowcount > 0

    def _purge_sql(self, db: sqlite3.Connection, now: float) -> bool:
        expired = db.execute(
            "SELECT 1 FROM lms_instances WHERE expires_at <= ? LIMIT 1", (now,)
        ).fetchone()
        if expired is None:
            return False
        db.execute("DELETE FROM lms_instances WHERE expires_at <= ?", (now,))
        db.execute(_BUMP)
        return True

    async def _write(self, statement: Callable[..., bool], *args: object) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = statement(db, *args)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self._with_db(run)

    # -- reads -----------------------------------------------------------

    async def lookup(self, service: str, *, include_unhealthy: bool = False) -> list[Instance]:
        """The unexpired instances of ``service``, sorted by id."""
        check_service_name(service)
        now = self._clock.now().timestamp()
        rows = await self._with_db(
            lambda db: db.execute(
                "SELECT record FROM lms_instances WHERE service = ? AND expires_at > ? ORDER BY id",
                (service, now),
            ).fetchall()
        )
        instances = []
        for (record,) in rows:
            try:
                instance = instance_from_record(decode_json(record, what="local registry record"))
            except InvalidRegistryData as exc:  # another process wrote it: skip, say so
                self._log.warning("skipping a malformed registry record", error=str(exc))
                continue
            if include_unhealthy or instance.healthy:
                instances.append(instance)
        return instances

    async def list_services(self) -> list[str]:
        """Services with at least one unexpired instance."""
        now = self._clock.now().timestamp()
        rows = await self._with_db(
            lambda db: db.execute(
                "SELECT DISTINCT service FROM lms_instances WHERE expires_at > ? ORDER BY service",
                (now,),
            ).fetchall()
        )
        return [str(row[0]) for row in rows]

    async def _changes(self) -> int:
        row = await self._with_db(
            lambda db: db.execute(
                "SELECT value FROM lms_registry_meta WHERE name = 'changes'"
            ).fetchone()
        )
        return int(row[0]) if row else 0

    async def watch(self, service: str) -> AsyncGenerator[list[Instance], None]:
        """Yield the healthy instances now and after each change (polled)."""
        check_service_name(service)
        last: list[Instance] | None = None
        seen = -1
        while True:
            try:
                await self._write(self._purge_sql, self._clock.now().timestamp())
                changes = await self._changes()
                if changes != seen:
                    current = await self.lookup(service)
                    seen = changes
                    if current != last:
                        last = current
                        yield current
            except RegistryUnavailable as exc:
                self._log.warning("registry poll failed", error=str(exc))
            if not await sleep_unless_stopped(self._clock, self.poll_interval, self._stopped):
                return

    # -- plumbing --------------------------------------------------------

    async def _with_db(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with self._lock:
                if self._db is None:
                    raise sqlite3.ProgrammingError("the local registry is not started")
                return work(self._db)

        return await self._call(run)

    async def _call(self, work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(work)
        except sqlite3.Error as exc:
            raise RegistryUnavailable(
                f"local registry failed: {exc}", backend=self.name, where=self.where
            ) from exc
