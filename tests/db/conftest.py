"""Fixtures of the database suite: every contract test runs on SQLite and PostgreSQL.

* ``backend`` parametrises a test over ``sqlite`` and ``postgresql`` (the
  latter skips without a server, fails under ``CI=true``);
* ``database`` (from the lms-shared plugin) is rolled back after each test,
  with the tables of ``db_models`` created;
* ``live`` makes databases that really commit, for tests of concurrency:
  a file on SQLite, a private schema on PostgreSQL, dropped afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine
from tests.db.db_models import Base

from lms_shared.db import Database, DatabaseConfig
from lms_shared.testing import ManualClock

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The plugin's ``database_url``, parametrised over both backends."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def database_metadata() -> MetaData:
    """Create the test models' tables in the per-test database."""
    return Base.metadata


@pytest.fixture
def clock() -> ManualClock:
    """Today's time, whose backoff sleeps return at once and are recorded (``slept``)."""
    return ManualClock(datetime.now(UTC), auto_advance=True)


Live = Callable[..., Database]


@pytest.fixture
async def live(database_url: str, backend: str, clock: ManualClock) -> AsyncIterator[Live]:
    """Make databases (sharing one store) that really commit; tables created.

    Keyword arguments override :class:`DatabaseConfig` fields.
    """
    schema = f"lms_t_{secrets.token_hex(5)}" if backend == "postgresql" else None
    admin = create_async_engine(database_url)
    async with admin.begin() as conn:
        if schema is not None:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        await conn.run_sync(Base.metadata.create_all)
    made: list[Database] = []

    def make(**overrides: Any) -> Database:
        options: dict[str, Any] = {"schema": schema, "retry_backoff": 0.01}
        options.update(overrides)
        db = Database(DatabaseConfig.for_url(database_url, service="suite", **options), clock=clock)
        made.append(db)
        return db

    try:
        yield make
    finally:
        for db in made:
            await db.stop()
        if schema is not None:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
