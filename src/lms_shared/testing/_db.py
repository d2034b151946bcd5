"""A per-test database whose changes are rolled back after each test.

SQLAlchemy's "join a session into an external transaction" recipe: the
test opens one connection and one transaction; every unit of work of the
:class:`~lms_shared.db.Database` joins it, its commits and rollbacks
becoming savepoints; at the end the outer transaction is rolled back, so
the next test starts from the same state - on SQLite and on PostgreSQL.
On PostgreSQL the tables live in a private schema created inside that
transaction, so parallel test runs on one server never see each other.

Fixtures (registered by the pytest plugin):

* ``postgres_url``: ``LMS_TEST_POSTGRES_URL`` (default
  ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``); skips the test
  when the server does not answer, fails it instead under ``CI=true``;
* ``database_url``: a SQLite file in the test's folder (override it, or
  parametrise it, to run on PostgreSQL);
* ``database_metadata``: ``None``; override it with your models' metadata
  to have their tables created for each test;
* ``database``: a :class:`~lms_shared.db.Database` on ``database_url``,
  rolled back after the test.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncConnection

from lms_shared.db import Database, DatabaseConfig, parse_database_url
from lms_shared.testing._servers import server_missing

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "database",
    "database_metadata",
    "database_url",
    "postgres_unreachable",
    "postgres_url",
    "rollback_database",
]

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@asynccontextmanager
async def rollback_database(
    db: Database, *, metadata: MetaData | None = None
) -> AsyncIterator[AsyncConnection]:
    """Run the block against ``db`` inside one transaction, then roll it back.

    Args:
        db: the database under test (it need not be started).
        metadata: create these tables first (inside the transaction).

    Yields:
        The connection every unit of work of ``db`` now goes through.
    """
    engine = db.new_engine()  # its own pool: stopping the service's leaves it alone
    try:
        async with engine.connect() as conn:
            outer = await conn.begin()
            try:
                if conn.dialect.name == "postgresql":
                    schema = f"lms_test_{secrets.token_hex(6)}"
                    await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                    await conn.execute(text(f'SET LOCAL search_path TO "{schema}", public'))
                if metadata is not None:
                    await conn.run_sync(metadata.create_all)
                with db.bind_connection(conn):
                    yield conn
            finally:
                await outer.rollback()
    finally:
        await engine.dispose()


def postgres_unreachable(url: str, *, timeout: float = 1.0) -> str | None:
    """Why the PostgreSQL server of ``url`` cannot be used, or ``None`` if it answers."""
    parsed = parse_database_url(url)
    hosts = parsed.query.get("host")
    first = hosts[0] if isinstance(hosts, tuple) else hosts
    if isinstance(first, str):
        host, _, port = first.partition(":")
        address = (host, int(port or 5432))
    else:
        address = (parsed.host or "127.0.0.1", parsed.port or 5432)
    try:
        with socket.create_connection(address, timeout=timeout):
            return None
    except OSError as exc:
        return f"PostgreSQL at {address[0]}:{address[1]} is unreachable ({exc})"


def postgres_url() -> str:
    """The test PostgreSQL server's URL; skips (or fails under ``CI=true``) when absent."""
    url = os.environ.get("LMS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    reason = postgres_unreachable(url)
    if reason is not None:
        server_missing(f"{reason}; set LMS_TEST_POSTGRES_URL")
    return url


def database_url(tmp_path: Path) -> str:
    """A SQLite file in the test's temporary folder."""
    return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"


def database_metadata() -> MetaData | None:
    """The tables to create for each test (override with your models' metadata)."""
    return None


async def database(
    database_url: str, database_metadata: MetaData | None
) -> AsyncIterator[Database]:
    """A database on ``database_url`` whose changes are rolled back after the test."""
    db = Database(DatabaseConfig.for_url(database_url, service="test"))
    try:
        async with rollback_database(db, metadata=database_metadata):
            yield db
    finally:
        await db.stop()
