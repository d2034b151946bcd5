"""The database configuration of one service, and its URLs.

Settings enter once: :meth:`DatabaseConfig.from_settings` turns the
``LMS_DATABASE_*`` settings into one frozen value. URLs are normalised to
the two async drivers the chassis supports:

* unset: ``sqlite+aiosqlite:///<LMS_STATE_DIR>/<service>.sqlite3``;
* ``sqlite://`` / ``sqlite+aiosqlite://`` with a file path;
* ``postgresql://``, ``postgres://`` or ``postgresql+asyncpg://``, with one
  host or several, libpq style (``u@h1:5432,h2:5432/db``) or SQLAlchemy
  style (``u@/db?host=h1:5432&host=h2:5432``). With several hosts the
  driver connects to the first writable one (``target_session_attrs=read-write``),
  or, for a replica URL, prefers a standby.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from lms_shared.errors import ConfigurationError
from lms_shared.settings import Settings

__all__ = ["DatabaseConfig", "parse_database_url", "where"]

Dialect = Literal["sqlite", "postgresql"]

_DRIVERS: dict[str, str] = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def parse_database_url(raw: str, *, replica: bool = False) -> URL:
    """Normalise a database URL to ``sqlite+aiosqlite`` or ``postgresql+asyncpg``.

    Args:
        raw: the URL as configured.
        replica: the URL names read replicas (several hosts prefer a standby).

    Raises:
        ConfigurationError: unsupported scheme, an in-memory SQLite
            database, or a URL SQLAlchemy cannot parse.
    """
    scheme, sep, rest = raw.strip().partition("://")
    if not sep:
        raise ConfigurationError(f"not a database URL: {_shown(raw)}")
    driver = _DRIVERS.get(scheme.lower())
    if driver is None:
        raise ConfigurationError(
            f"unsupported database URL scheme {scheme!r}; "
            "use postgresql+asyncpg://... or sqlite+aiosqlite:///path"
        )
    if driver.startswith("postgresql"):
        rest = _libpq_hosts_to_query(rest)
    try:
        url = make_url(f"{driver}://{rest}")
    except (ArgumentError, ValueError):
        # from None: the driver's message may quote the URL, password included
        raise ConfigurationError(
            "cannot parse the database URL; expected "
            "postgresql://user:password@host:port/database or sqlite:///path"
        ) from None
    if driver.startswith("sqlite"):
        if url.database in (None, "", ":memory:"):
            raise ConfigurationError(
                "an in-memory SQLite database is not shared between connections; "
                "name a file: sqlite+aiosqlite:///path/to/db.sqlite3"
            )
        return url
    hosts = url.query.get("host")
    if isinstance(hosts, tuple) and len(hosts) > 1 and "target_session_attrs" not in url.query:
        url = url.update_query_dict(
            {"target_session_attrs": "prefer-standby" if replica else "read-write"}
        )
    return url


def _libpq_hosts_to_query(rest: str) -> str:
    """``u@h1:1,h2:2/db?x`` -> ``u@/db?x&host=h1:1&host=h2:2`` (SQLAlchemy's form)."""
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, hostlist = netloc.rpartition("@")
    if "," not in hostlist:
        return rest
    hosts = []
    for item in hostlist.split(","):
        host, _, port = item.strip().partition(":")
        if not host:
            raise ConfigurationError("an empty host in the database URL's host list")
        hosts.append(f"host={host}:{port or 5432}")
    path, qmark, query = tail.partition("?")
    params = "&".join([*([query] if query else []), *hosts])
    return f"{userinfo}{at}{path or '/'}?{params}" if qmark or params else rest


def _shown(raw: str) -> str:
    try:
        return make_url(raw).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def _where(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    hosts = url.query.get("host")
    if isinstance(hosts, tuple):
        return ",".join(hosts)
    if isinstance(hosts, str):
        return hosts
    return f"{url.host or 'localhost'}:{url.port or 5432}"


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """Everything the database layer of one service is built from.

    Attributes:
        service: the service's name (version table, advisory lock, application name).
        url: the primary's URL, normalised.
        replica_urls: read replicas; read-only work goes to them in turn.
        schema: PostgreSQL schema put first on the ``search_path``.
        pool_size: connections kept in the pool.
        max_overflow: extra connections opened under load.
        pool_timeout: seconds to wait for a pooled connection.
        pool_recycle: seconds after which a connection is replaced.
        pool_pre_ping: test connections as they leave the pool.
        connect_timeout: seconds per connection attempt.
        statement_timeout: PostgreSQL ``statement_timeout`` in seconds.
        busy_timeout: seconds SQLite waits for a lock.
        connect_retries: connection attempts before ``DatabaseUnavailable``.
        retry_attempts: runs of a unit of work that hits a conflict.
        retry_backoff: first backoff delay; doubles per retry.
        retry_max_backoff: longest backoff delay.
        migrate_on_start: upgrade to head at start-up (under a lock).
        fail_fast: refuse to start when the database is unreachable.
        start_timeout: seconds start-up may spend reaching the database.
    """

    service: str
    url: URL
    replica_urls: tuple[URL, ...] = ()
    schema: str | None = None
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 5.0
    pool_recycle: float = 1800.0
    pool_pre_ping: bool = True
    connect_timeout: float = 5.0
    statement_timeout: float = 30.0
    busy_timeout: float = 5.0
    connect_retries: int = 5
    retry_attempts: int = 3
    retry_backoff: float = 0.05
    retry_max_backoff: float = 2.0
    migrate_on_start: bool = False
    fail_fast: bool = True
    start_timeout: float = 9.0

    @classmethod
    def for_url(cls, url: str, *, service: str = "app", **options: Any) -> DatabaseConfig:
        """A configuration from a URL and keyword overrides (tests, CLI, scripts).

        Raises:
            ConfigurationError: the URL is not supported.
        """
        replicas = tuple(parse_database_url(u, replica=True) for u in options.pop("replicas", ()))
        return cls(service=service, url=parse_database_url(url), replica_urls=replicas, **options)

    @classmethod
    def from_settings(cls, service: str, settings: Settings) -> DatabaseConfig:
        """The configuration of ``service`` from its ``LMS_*`` settings.

        Raises:
            ConfigurationError: ``LMS_DATABASE_URL`` or a replica URL is not supported.
        """
        raw = settings.database_url
        if raw is None:
            path = (settings.state_dir / f"{service}.sqlite3").resolve()
            raw = f"sqlite+aiosqlite:///{path}"
        return cls(
            service=service,
            url=parse_database_url(raw),
            replica_urls=tuple(
                parse_database_url(u, replica=True) for u in settings.database_replica_urls
            ),
            schema=settings.database_schema,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_timeout=settings.database_pool_timeout,
            pool_recycle=settings.database_pool_recycle,
            pool_pre_ping=settings.database_pool_pre_ping,
            connect_timeout=settings.database_connect_timeout,
            statement_timeout=settings.database_statement_timeout,
            busy_timeout=settings.database_busy_timeout,
            connect_retries=settings.database_connect_retries,
            retry_attempts=settings.database_retry_attempts,
            retry_backoff=settings.database_retry_backoff,
            migrate_on_start=settings.database_migrate_on_start,
            fail_fast=settings.database_fail_fast,
            start_timeout=settings.component_timeout * 0.9,
        )

    @property
    def dialect(self) -> Dialect:
        """``"sqlite"`` or ``"postgresql"``."""
        return "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"

    @property
    def where(self) -> str:
        """Where the primary is: ``host:port`` (comma-separated) or the SQLite file."""
        return _where(self.url)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or ``None`` on PostgreSQL."""
        return Path(str(self.url.database)) if self.dialect == "sqlite" else None

    @property
    def version_table(self) -> str:
        """The service's own Alembic version table (``alembic_version_courses``)."""
        return "alembic_version_" + self.service.replace("-", "_")

    def redacted_url(self) -> str:
        """The primary URL with its password masked."""
        return self.url.render_as_string(hide_password=True)


def where(url: URL) -> str:
    """Where a URL points: ``host:port`` (comma-separated) or the SQLite file."""
    return _where(url)
