"""The database of one service: engines, units of work, retries, readiness.

``service.db`` is a :class:`Database`, a lifecycle component: it creates
its engines (primary and replicas) when it starts or is first used, checks
that the primary answers, optionally migrates, and disposes the pools when
the service stops. Work happens in units of work::

    async with service.db.transaction() as tx:        # an AsyncSession
        tx.add(Course(title="Rust"))                  # committed on exit

    course = await service.db.run(lambda tx: tx.get(Course, course_id), read_only=True)

``transaction()`` is one attempt; ``run()`` (and the ``transactional``
decorator) re-runs the whole function on serialization failures and
deadlocks, and after a lost connection, with backoff on the injected clock
(see ``_units``). Read-only work goes to the replicas in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opentelemetry.trace import TracerProvider
from sqlalchemy import MetaData, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.schema import CreateSchema

from lms_shared.clock import Clock, SystemClock
from lms_shared.db._config import DatabaseConfig
from lms_shared.db._engine import READ_ONLY_OPTION, PoolStats, create_engine, pool_stats
from lms_shared.db._errors import DatabaseUnavailable, MigrationError
from lms_shared.db._migrations import Migrations
from lms_shared.db._retry import backoff_delay, is_disconnect
from lms_shared.db._scoping import scoped_session_class
from lms_shared.db._tracing import trace_engine
from lms_shared.db._units import UnitsOfWork
from lms_shared.errors import NotReady
from lms_shared.observability import get_logger
from lms_shared.settings import Settings

__all__ = ["NOT_MIGRATED", "Database"]

NOT_MIGRATED = (
    "database: not at the migrations' head "
    "(run `lms-shared db upgrade` or set LMS_DATABASE_MIGRATE_ON_START=true)"
)
"""Why readiness fails while the schema is behind the code (shown in probes)."""


class Database(UnitsOfWork):
    """A service's database: a component with units of work and readiness.

    Args:
        config: the database configuration (see :meth:`from_settings`).
        clock: sleeps between retries; the system clock by default.
    """

    def __init__(self, config: DatabaseConfig, *, clock: Clock | None = None) -> None:
        self.name = "database"
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.migrations: Migrations | None = None
        self._migrated = False
        self.log = get_logger("lms.db", service=config.service)
        self.reconnect_backoff = 0.25
        self._engine: AsyncEngine | None = None
        self._replicas: list[AsyncEngine] = []
        self._makers: list[async_sessionmaker[AsyncSession]] = []
        self._bound: async_sessionmaker[AsyncSession] | None = None
        self._bound_connection: AsyncConnection | None = None
        self._read_only_options = {
            READ_ONLY_OPTION if config.dialect == "sqlite" else "postgresql_readonly": True
        }
        self._turn = 0
        self._waits = 0
        self._timeouts = 0
        # a span per statement when set (the service sets its tracing's provider)
        self.tracer_provider: TracerProvider | None = None

    @classmethod
    def from_settings(
        cls, service: str, settings: Settings, *, clock: Clock | None = None
    ) -> Database:
        """The database of ``service`` as its ``LMS_DATABASE_*`` settings describe.

        Raises:
            ConfigurationError: a database URL is not supported.
        """
        return cls(DatabaseConfig.from_settings(service, settings), clock=clock)

    # -- engines -------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The primary's engine (created on first use; no connection yet)."""
        return self._engine if self._engine is not None else self._open()

    @property
    def replicas(self) -> tuple[AsyncEngine, ...]:
        """The replicas' engines, in the order read-only work visits them."""
        if self._engine is None:
            self._open()
        return tuple(self._replicas)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.config.dialect

    def _open(self) -> AsyncEngine:
        path = self.config.sqlite_path
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(
                    f"cannot create the folder of the database at {path} ({exc})",
                    host=str(path),
                ) from exc
        session_class = scoped_session_class(self.config.service.replace("-", "_").title())
        engine = create_engine(self.config.url, self.config)
        replicas = [create_engine(url, self.config) for url in self.config.replica_urls]
        self._makers = [
            async_sessionmaker(e, expire_on_commit=False, sync_session_class=session_class)
            for e in (engine, *replicas)
        ]
        self._engine, self._replicas = engine, replicas
        if self.tracer_provider is not None:
            for each in (engine, *replicas):
                trace_engine(each, self.tracer_provider)
        return engine

    def use_migrations(
        self, directory: str | Path, *, metadata: MetaData | None = None
    ) -> Migrations:
        """Use the Alembic revisions in ``directory`` (its own version table).

        Args:
            directory: the service's migrations folder (revision files only).
            metadata: the service's models' metadata, for ``revision --autogenerate``.
        """
        self.migrations = Migrations(
            directory, version_table=self.config.version_table, metadata=metadata
        )
        return self.migrations

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Create the engines, reach the primary and migrate if configured.

        Raises:
            DatabaseUnavailable: the primary stayed unreachable (the message
                names the host) and ``fail_fast`` is set.
            MigrationError: migrate-on-start is set without migrations, or failed.
        """
        if self._engine is None:
            self._open()
        if self.config.fail_fast or self.config.migrate_on_start:
            await self._reach()
        if self.config.migrate_on_start:
            if self.migrations is None:
                raise MigrationError(
                    "LMS_DATABASE_MIGRATE_ON_START is set but the service has no "
                    "migrations: call service.db.use_migrations(folder)"
                )
            await self._ensure_schema()
            applied = await self.migrations.upgrade(self._migration_target())
            self.log.info("migrated", revisions=applied)
        self.log.info("database started", url=self.config.redacted_url())

    async def _ensure_schema(self) -> None:
        # a schema that does not exist would silently put the tables in
        # "public" (the search path is "<schema>,public"): create it first
        schema = self.config.schema
        if schema is None or self.dialect != "postgresql":
            return
        bound = self._bound_connection
        if bound is not None:  # inside the test's transaction, rolled back with it
            async with bound.begin_nested():
                await bound.execute(CreateSchema(schema, if_not_exists=True))
            return
        async with self.engine.begin() as conn:
            await conn.execute(CreateSchema(schema, if_not_exists=True))

    async def stop(self) -> None:
        """Dispose every pool (idempotent; the database reopens if used again)."""
        engines = [e for e in (self._engine, *self._replicas) if e is not None]
        self._engine, self._replicas, self._makers = None, [], []
        for engine in engines:
            await engine.dispose()

    async def _reach(self) -> None:
        attempts = self.config.connect_retries
        last: BaseException | None = None
        try:
            async with asyncio.timeout(self.config.start_timeout):
                for attempt in range(1, attempts + 1):
                    try:
                        await self._select_one()
                    except (DBAPIError, OSError) as exc:
                        last = exc
                        if not is_disconnect(exc):
                            break
                        if attempt < attempts:
                            await self.clock.sleep(
                                backoff_delay(attempt, self.reconnect_backoff, 2.0)
                            )
                    else:
                        return
        except TimeoutError:
            raise DatabaseUnavailable(
                f"the database at {self.config.where} did not answer within "
                f"{self.config.start_timeout:g}s",
                host=self.config.where,
                attempts=attempts,
            ) from last
        reason = f"{type(last).__name__}: {last}".splitlines()[0][:200]
        raise DatabaseUnavailable(
            f"cannot reach the database at {self.config.where} ({reason})",
            host=self.config.where,
            attempts=attempts,
        ) from last

    async def ping(self) -> str:
        """Readiness: ``SELECT 1`` on the primary.

        Returns:
            A one-line summary (backend, host, pool figures) for the log.

        Raises:
            DatabaseUnavailable: the primary does not answer (names the host).
            NotReady: the database is not at the migrations' head.
            MigrationError: the migrations folder is missing or unreadable.
        """
        stats = self.pool_stats()
        summary = f"{self.dialect} at {self.config.where}; {stats.in_use} in use, {stats.idle} idle"
        if stats.saturated:
            return summary + " (pool saturated)"
        try:
            await self._select_one()
        except (DBAPIError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            raise DatabaseUnavailable(
                f"cannot reach the database at {self.config.where} ({reason})",
                host=self.config.where,
            ) from exc
        await self._check_migrated()
        return summary

    async def _check_migrated(self) -> None:
        # a service whose schema is behind its code answers 500s ("no such
        # table"): not ready until the database is at the migrations' head.
        # Checked until it first holds, then remembered.
        # Under a bound connection (a rolled-back test) the revision is read
        # through it: that is where the test's schema is, and on SQLite a
        # second connection would wait for the test's write lock.
        if self.migrations is None or self._migrated:
            return
        heads = set(self.migrations.heads())
        current = set(await self.migrations.current(self._migration_target()))
        if current != heads:
            self.log.warning(
                "database not at the migrations' head",
                current=sorted(current),
                heads=sorted(heads),
            )
            raise NotReady(NOT_MIGRATED)
        self._migrated = True

    def _migration_target(self) -> AsyncEngine | AsyncConnection:
        return self._bound_connection if self._bound_connection is not None else self.engine

    async def _select_one(self) -> None:
        # read-only: on SQLite a plain BEGIN, which never waits for a writer
        async with self.engine.connect() as conn:
            await conn.execution_options(**self._read_only_options)
            await conn.execute(text("SELECT 1"))

    def pool_stats(self) -> PoolStats:
        """The primary pool's figures (in use, idle, overflow, waits, timeouts)."""
        if self._engine is None:
            return PoolStats(
                self.config.pool_size,
                self.config.max_overflow,
                0,
                0,
                0,
                self._waits,
                self._timeouts,
            )
        return pool_stats(self._engine, self.config, self._waits, self._timeouts)

    def new_engine(self) -> AsyncEngine:
        """A separate engine with this database's settings; the caller disposes it."""
        return create_engine(self.config.url, self.config)

    @contextmanager
    def bind_connection(self, connection: AsyncConnection) -> Iterator[None]:
        """Route every unit of work through ``connection`` (for tests).

        Sessions join the connection's transaction, committing and rolling
        back savepoints of it, so the test can roll everything back.
        Migrations at start (``LMS_DATABASE_MIGRATE_ON_START``) and the
        readiness check's migration head go through it too.
        """
        if self._engine is None:
            self._open()
        maker = async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            sync_session_class=self._makers[0].kw["sync_session_class"],
            join_transaction_mode="create_savepoint",
        )
        previous = self._bound, self._bound_connection, self._migrated
        self._bound, self._bound_connection, self._migrated = maker, connection, False
        try:
            yield
        finally:
            self._bound, self._bound_connection, self._migrated = previous

    def _maker(self, read_only: bool, primary: bool) -> async_sessionmaker[AsyncSession]:
        if self._bound is not None:
            return self._bound
        if self._engine is None:
            self._open()
        if read_only and not primary and len(self._makers) > 1:
            self._turn += 1
            return self._makers[1 + self._turn % (len(self._makers) - 1)]
        return self._makers[0]

    def _saturated(self) -> bool:
        engine = self._engine
        if engine is None:
            return False
        pool = engine.pool
        limit = self.config.pool_size + self.config.max_overflow
        return isinstance(pool, AsyncAdaptedQueuePool) and pool.checkedout() >= limit
