"""Alembic migrations per service, run programmatically.

A service's migrations folder holds only revision files; the environment
(``env.py``) and the revision template ship with lms-shared, so no
``alembic.ini`` is needed. Each service records its revision in its own
version table (``alembic_version_<service>``), so services can share one
database. On PostgreSQL, :meth:`Migrations.upgrade` holds a session-level
advisory lock keyed by that table, so replicas migrating at start-up do not
race: one applies, the others wait and then find nothing to do. On SQLite
the write lock (``BEGIN IMMEDIATE``) serialises them the same way. Within
one process, runs take turns: Alembic's ``context`` is process-global.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lms_shared.db._config import where
from lms_shared.db._engine import READ_ONLY_OPTION
from lms_shared.db._errors import DatabaseUnavailable, MigrationError
from lms_shared.db._retry import is_disconnect

__all__ = ["Migrations", "RevisionInfo"]

_SCRIPT_DIR = Path(__file__).with_name("_alembic")

# Alembic's ``context`` is one process-wide proxy, so two runs interleaving in
# one event loop would clobber each other: they take turns (one lock per loop).
_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _turn() -> asyncio.Lock:
    return _TURNS.setdefault(asyncio.get_running_loop(), asyncio.Lock())


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    """One revision of a service's history.

    Attributes:
        revision: its id.
        down_revisions: the revisions it follows (none for the first).
        message: its first docstring line.
        is_head: nothing follows it yet.
    """

    revision: str
    down_revisions: tuple[str, ...]
    message: str
    is_head: bool


class Migrations:
    """A service's Alembic revisions and the table that records them.

    Args:
        directory: the folder of revision files.
        version_table: the service's own version table.
        metadata: the service's model metadata (for autogenerate).
    """

    def __init__(
        self, directory: str | Path, *, version_table: str, metadata: MetaData | None = None
    ) -> None:
        self.directory = Path(directory)
        self.version_table = version_table
        self.metadata = metadata

    @property
    def lock_key(self) -> int:
        """The PostgreSQL advisory lock key (a signed 64-bit hash of the table name)."""
        digest = hashlib.blake2b(f"lms-migrations:{self.version_table}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big", signed=True)

    def _config(
        self, connection: Connection | None = None, applied: list[str] | None = None
    ) -> Config:
        if not self.directory.is_dir():
            raise MigrationError(f"no migrations folder at {self.directory}")
        config = Config()
        config.set_main_option("script_location", str(_SCRIPT_DIR))
        config.set_main_option("version_locations", str(self.directory).replace("%", "%%"))
        config.set_main_option("path_separator", "os")
        config.set_main_option(
            "file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s"
        )
        config.attributes.update(
            connection=connection,
            lms_version_table=self.version_table,
            lms_metadata=self.metadata,
            lms_applied=applied if applied is not None else [],
        )
        return config

    def script(self) -> ScriptDirectory:
        """Alembic's view of the revisions.

        Raises:
            MigrationError: the folder does not exist.
        """
        return ScriptDirectory.from_config(self._config())

    def heads(self) -> list[str]:
        """The newest revision(s) in the folder."""
        return list(self.script().get_heads())

    def history(self) -> list[RevisionInfo]:
        """Every revision, newest first.

        Raises:
            MigrationError: the folder is missing or the revisions do not form a history.
        """
        try:
            script = self.script()
            heads = set(script.get_heads())
            return [
                RevisionInfo(
                    revision=rev.revision,
                    down_revisions=_as_tuple(rev.down_revision),
                    message=rev.doc,
                    is_head=rev.revision in heads,
                )
                for rev in script.walk_revisions()
            ]
        except CommandError as exc:
            raise MigrationError(str(exc)) from exc

    async def current(self, engine: AsyncEngine | AsyncConnection) -> list[str]:
        """The revision(s) the database is at (empty: never migrated).

        Args:
            engine: the service's primary engine (read on a connection of its
                own, read-only), or a connection to read through as it is
                (a test's rolled-back transaction).
        """

        def read(connection: Connection) -> list[str]:
            context = MigrationContext.configure(
                connection, opts={"version_table": self.version_table}
            )
            return list(context.get_current_heads())

        if isinstance(engine, AsyncConnection):
            return await engine.run_sync(read)
        async with _connected(engine) as conn:
            if conn.dialect.name == "sqlite":  # a plain BEGIN: no wait for a writer
                await conn.execution_options(**{READ_ONLY_OPTION: True})
            return await conn.run_sync(read)

    async def upgrade(
        self, engine: AsyncEngine | AsyncConnection, revision: str = "head", *, lock: bool = True
    ) -> list[str]:
        """Upgrade the database to ``revision``.

        Args:
            engine: the service's primary engine; or a connection in a
                transaction (a test's), migrated in a savepoint of it without
                the lock and left uncommitted.
            revision: target revision (``head`` by default, ``+1`` works too).
            lock: hold the PostgreSQL advisory lock while migrating.

        Returns:
            The revisions this call applied (empty: already there).

        Raises:
            MigrationError: a revision failed or the target does not exist.
        """
        return await self._apply(engine, "upgrade", revision, lock)

    async def downgrade(
        self, engine: AsyncEngine | AsyncConnection, revision: str, *, lock: bool = True
    ) -> list[str]:
        """Downgrade the database to ``revision`` (``base``, ``-1``, an id).

        Returns:
            The revisions this call reverted.

        Raises:
            MigrationError: a revision failed or the target does not exist.
        """
        return await self._apply(engine, "downgrade", revision, lock)

    async def _apply(
        self, engine: AsyncEngine | AsyncConnection, verb: str, revision: str, lock: bool
    ) -> list[str]:
        applied: list[str] = []

        def run(connection: Connection) -> None:
            getattr(command, verb)(self._config(connection, applied), revision)

        if isinstance(engine, AsyncConnection):  # the caller owns the transaction
            async with _turn():
                try:
                    async with engine.begin_nested():
                        await engine.run_sync(run)
                except CommandError as exc:
                    raise MigrationError(f"{verb} to {revision!r} failed: {exc}") from exc
            return applied
        async with _turn(), _connected(engine) as conn:
            locked = lock and conn.dialect.name == "postgresql"
            if locked:
                await self._lock(conn, func.pg_advisory_lock)
            try:
                await conn.run_sync(run)
                await conn.commit()
            except CommandError as exc:
                raise MigrationError(f"{verb} to {revision!r} failed: {exc}") from exc
            finally:
                if locked:
                    await conn.rollback()
                    await self._lock(conn, func.pg_advisory_unlock)
        return applied

    async def _lock(self, conn: AsyncConnection, fn: Any) -> None:
        await conn.execute(select(fn(self.lock_key)))
        await conn.commit()

    async def revision(
        self, message: str, *, autogenerate: bool = False, engine: AsyncEngine | None = None
    ) -> Path:
        """Write a new revision file and return its path.

        Args:
            message: what the revision does (also its file name's slug).
            autogenerate: fill it in by comparing ``metadata`` with the database.
            engine: the database to compare with (required to autogenerate).

        Raises:
            MigrationError: autogenerate without metadata or engine, or Alembic refused.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if not autogenerate:
            async with _turn():
                return self._write(self._config(), message, autogenerate=False)
        if engine is None or self.metadata is None:
            raise MigrationError("autogenerate needs the service's metadata and a database")
        async with _turn(), _connected(engine) as conn:
            return await conn.run_sync(
                lambda c: self._write(self._config(c), message, autogenerate=True)
            )

    def _write(self, config: Config, message: str, *, autogenerate: bool) -> Path:
        try:
            script = command.revision(config, message=message, autogenerate=autogenerate)
        except CommandError as exc:
            raise MigrationError(f"cannot create the revision: {exc}") from exc
        if script is None or isinstance(script, list):
            raise MigrationError("Alembic did not write exactly one revision")
        return Path(script.path)


def _as_tuple(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@asynccontextmanager
async def _connected(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection; connection and SQL failures become typed errors."""
    try:
        async with engine.connect() as conn:
            yield conn
    except (DBAPIError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        if is_disconnect(exc):
            host = where(engine.url)
            raise DatabaseUnavailable(
                f"cannot reach the database at {host} ({reason})", host=host
            ) from exc
        raise MigrationError(f"a migration statement failed: {reason}") from exc
