"""Engines and pools: one async engine per URL, tuned per dialect.

* **SQLite** (aiosqlite): WAL journal, a busy timeout and foreign keys on
  every connection, so the processes of one machine share the file, and a
  case-sensitive ``LIKE`` as on PostgreSQL. The
  driver's own transaction handling is switched off and SQLAlchemy emits
  ``BEGIN IMMEDIATE`` for writing transactions (the write lock is taken up
  front, so two writers queue on the busy timeout instead of failing
  mid-transaction) and a plain ``BEGIN`` under ``PRAGMA query_only`` for
  read-only ones. Savepoints and transactional DDL work as on PostgreSQL.
* **PostgreSQL** (asyncpg): a server-side ``statement_timeout``, the
  service's name as ``application_name``, its schema first on the
  ``search_path``, and a connect timeout.

Pools are ``AsyncAdaptedQueuePool`` with the configured size, overflow,
timeout, recycle and pre-ping. :class:`PoolStats` is their snapshot for
metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from lms_shared.db._config import DatabaseConfig
from lms_shared.errors import ConfigurationError

__all__ = ["READ_ONLY_OPTION", "PoolStats", "create_engine", "pool_stats"]

READ_ONLY_OPTION = "lms_read_only"
"""Execution option marking a read-only transaction (SQLite's ``BEGIN``)."""


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a connection pool, for metrics.

    Attributes:
        size: connections the pool keeps.
        max_overflow: extra connections it may open.
        in_use: connections checked out right now.
        idle: connections open and waiting in the pool.
        overflow: connections open beyond ``size``.
        waits: checkouts that found the pool saturated and had to wait.
        timeouts: checkouts that gave up after the pool timeout (503s).
    """

    size: int
    max_overflow: int
    in_use: int
    idle: int
    overflow: int
    waits: int
    timeouts: int

    @property
    def saturated(self) -> bool:
        """Every connection the pool may open is in use."""
        return self.in_use >= self.size + self.max_overflow


def create_engine(url: URL, config: DatabaseConfig) -> AsyncEngine:
    """An async engine for ``url`` with the pool and session settings of ``config``.

    Creating it opens no connection.

    Raises:
        ConfigurationError: the driver of the URL is not installed.
    """
    options: dict[str, Any] = {
        "poolclass": AsyncAdaptedQueuePool,
        "pool_size": config.pool_size,
        "max_overflow": config.max_overflow,
        "pool_timeout": config.pool_timeout,
        "pool_recycle": config.pool_recycle,
        "pool_pre_ping": config.pool_pre_ping,
    }
    if url.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": config.busy_timeout}
    else:
        _require("asyncpg", "postgres")
        server_settings = {
            "statement_timeout": str(int(config.statement_timeout * 1000)),
            "application_name": config.service[:63],
        }
        if config.schema is not None:
            server_settings["search_path"] = f"{config.schema},public"
        options["connect_args"] = {
            "timeout": config.connect_timeout,
            "server_settings": server_settings,
        }
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        _tune_sqlite(engine, config)
    return engine


def _require(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise ConfigurationError(
            f"the database URL needs the {module!r} driver: pip install 'lms-shared[{extra}]'"
        ) from exc


def _tune_sqlite(engine: AsyncEngine, config: DatabaseConfig) -> None:
    busy_ms = int(config.busy_timeout * 1000)

    def on_connect(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
        # SQLAlchemy emits BEGIN itself (below): savepoints, transactional DDL
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA case_sensitive_like=ON")  # LIKE as on PostgreSQL
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        read_only = bool(connection.get_execution_options().get(READ_ONLY_OPTION, False))
        if connection.info.get(READ_ONLY_OPTION, False) != read_only:
            # query_only makes SQLite refuse writes, as PostgreSQL does in READ ONLY
            connection.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
            connection.info[READ_ONLY_OPTION] = read_only
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "begin", on_begin)


def pool_stats(engine: AsyncEngine, config: DatabaseConfig, waits: int, timeouts: int) -> PoolStats:
    """The snapshot of ``engine``'s pool (zeros for a pool that is not a queue)."""
    pool = engine.pool
    if not isinstance(pool, AsyncAdaptedQueuePool):
        return PoolStats(config.pool_size, config.max_overflow, 0, 0, 0, waits, timeouts)
    return PoolStats(
        size=pool.size(),
        max_overflow=config.max_overflow,
        in_use=pool.checkedout(),
        idle=pool.checkedin(),
        overflow=max(0, pool.overflow()),
        waits=waits,
        timeouts=timeouts,
    )
