"""A real, committing database for the SQL event stores: SQLite and PostgreSQL.

The outbox relay and the inbox need commits that other connections see, so
these tests do not use the rolled-back ``database`` fixture: SQLite gets a
file in the test's folder, PostgreSQL a private schema dropped afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lms_shared.db import Database, DatabaseConfig
from lms_shared.events.sql import create_event_tables

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``."""
    return str(request.param)


@pytest.fixture
def sql_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of the backend under test."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'events.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def sql_schema(backend: str, sql_url: str) -> AsyncIterator[str | None]:
    """A private PostgreSQL schema (``None`` on SQLite), dropped after the test."""
    if backend != "postgresql":
        yield None
        return
    schema = f"lms_ev_{secrets.token_hex(5)}"
    admin = create_async_engine(sql_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def sql_db(sql_url: str, sql_schema: str | None) -> AsyncIterator[Database]:
    """A started database with the outbox, inbox and dead-letter tables."""
    db = Database(DatabaseConfig.for_url(sql_url, service="events", schema=sql_schema))
    await db.start()
    await create_event_tables(db)
    try:
        yield db
    finally:
        await db.stop()


def same_database(db: Database) -> Database:
    """Another Database object on the same store (a second process, a restart)."""
    return Database(db.config)
