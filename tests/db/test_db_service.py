"""``service.db``: lazy, started with the service, readiness, pool limits (both backends)."""

from __future__ import annotations

import asyncio
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from tests.db.conftest import Live
from tests.db.db_models import Base, Item

from lms_shared import SettingsError, create_service, load_settings
from lms_shared.db import Database, DatabaseBusy, DatabaseConfig, DatabaseUnavailable
from lms_shared.testing import LifespanError, capture_logs, rollback_database, service_client


def test_a_service_that_never_uses_the_database_has_none(tmp_path: Path) -> None:
    service = create_service("quiet", "1.0.0", settings=load_settings(state_dir=tmp_path / "s"))
    assert "database" not in service.health.names
    assert "database" not in [c.name for c in service.lifecycle.components]
    assert not (tmp_path / "s").exists()


async def test_the_default_database_is_sqlite_in_the_state_folder(tmp_path: Path) -> None:
    state = tmp_path / "state" / "deeper"
    service = create_service("courses", "1.0.0", settings=load_settings(state_dir=state))
    db = service.db
    assert service.db is db
    assert db.dialect == "sqlite"
    assert db.config.sqlite_path == (state / "courses.sqlite3").resolve()
    assert "database" in service.health.names
    assert not state.exists()  # nothing until start
    async with service_client(service) as client:
        assert (state / "courses.sqlite3").exists()
        with capture_logs() as logs:
            ready = (await client.get("/health/ready")).json()
        assert ready["checks"]["database"] == {
            "status": "pass",
            "critical": True,
            "duration_ms": ready["checks"]["database"]["duration_ms"],
        }
        (passed,) = logs.events("health check passed")  # the path is for the log only
        assert passed["output"].startswith(f"sqlite at {state / 'courses.sqlite3'}")
        async with db.transaction(read_only=True) as tx:
            assert await tx.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await tx.scalar(text("PRAGMA busy_timeout")) == 5000
            assert await tx.scalar(text("PRAGMA foreign_keys")) == 1
    assert db._engine is None  # disposed with the service


async def test_a_database_first_used_after_start_still_closes(tmp_path: Path) -> None:
    service = create_service("late", "1.0.0", settings=load_settings(state_dir=tmp_path))
    v1 = service.api(1)

    @v1.get("/count")
    async def count() -> int:
        async with service.db.transaction(read_only=True) as tx:
            return int(await tx.scalar(select(1)) or 0)

    service.include(v1)
    async with service_client(service) as client:
        assert (await client.get("/v1/count")).json() == 1
        assert "database" in service.health.names
    assert service.db._engine is None


def test_settings_reach_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_DATABASE_URL", "postgresql://u:pw@h1:5432,h2:5433/lms")
    monkeypatch.setenv("LMS_DATABASE_REPLICA_URLS", '["postgresql://u:pw@r1:5432/lms"]')
    monkeypatch.setenv("LMS_DATABASE_POOL_SIZE", "7")
    monkeypatch.setenv("LMS_DATABASE_STATEMENT_TIMEOUT", "2.5")
    monkeypatch.setenv("LMS_DATABASE_SCHEMA", "courses")
    settings = load_settings()
    config = DatabaseConfig.from_settings("courses", settings)
    assert config.where == "h1:5432,h2:5433"
    assert config.url.query["target_session_attrs"] == "read-write"
    assert config.pool_size == 7
    assert config.statement_timeout == 2.5
    assert config.schema == "courses"
    assert [u.host for u in config.replica_urls] == ["r1"]
    redacted = settings.redacted()
    assert "pw" not in str(redacted["database_url"]) + str(redacted["database_replica_urls"])
    monkeypatch.setenv("LMS_DATABASE_POOL_SIZE", "0")
    with pytest.raises(SettingsError, match="LMS_DATABASE_POOL_SIZE"):
        load_settings()
    monkeypatch.setenv("LMS_DATABASE_POOL_SIZE", "5")
    monkeypatch.setenv("LMS_DATABASE_SCHEMA", "bad-name; drop")
    with pytest.raises(SettingsError, match="LMS_DATABASE_SCHEMA"):
        load_settings()


async def test_an_unreachable_database_at_start_up_names_the_host() -> None:
    settings = load_settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/test", database_connect_retries=2
    )
    service = create_service("orphan", "1.0.0", settings=settings)
    _ = service.db
    with pytest.raises(LifespanError, match=r"database.*127\.0\.0\.1:1"):
        async with service_client(service):
            pass


async def test_without_fail_fast_it_starts_but_is_not_ready() -> None:
    settings = load_settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/test", database_fail_fast=False
    )
    service = create_service("orphan", "1.0.0", settings=settings)
    _ = service.db
    async with service_client(service) as client:
        with capture_logs() as logs:
            response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["checks"]["database"]["status"] == "fail"
        assert "127.0.0.1" not in response.text  # hosts are for the log
        (failed,) = logs.events("health check failed")
        assert "DatabaseUnavailable" in failed["error"]
        assert "127.0.0.1:1" in failed["error"]
        with pytest.raises(DatabaseUnavailable) as caught:
            await service.db.ping()
        assert caught.value.host == "127.0.0.1:1"
        assert caught.value.headers["Retry-After"]


async def test_an_unusable_sqlite_path_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    db = Database(DatabaseConfig.for_url(f"sqlite:///{tmp_path / 'file' / 'x.sqlite3'}"))
    with pytest.raises(DatabaseUnavailable, match="file"):
        await db.start()


@pytest.fixture
def exhaustible(live: Live) -> Database:
    return live(pool_size=1, max_overflow=0, pool_timeout=0.2)


async def test_pool_exhaustion_is_a_503_problem_not_a_hang(exhaustible: Database) -> None:
    service = create_service("busy", "1.0.0", settings=load_settings())
    holding, release = asyncio.Event(), asyncio.Event()
    v1 = service.api(1)

    @v1.get("/hold")
    async def hold() -> str:
        async with exhaustible.transaction() as tx:
            await tx.scalar(select(1))
            holding.set()
            await release.wait()
        return "done"

    @v1.get("/quick")
    async def quick() -> int:
        return await exhaustible.run(lambda tx: tx.scalar(select(func.count()).select_from(Item)))

    service.include(v1)
    async with service_client(service) as client:
        held = asyncio.create_task(client.get("/v1/hold"))
        await asyncio.wait_for(holding.wait(), 5)
        assert exhaustible.pool_stats().in_use == 1
        assert exhaustible.pool_stats().saturated
        response = await asyncio.wait_for(client.get("/v1/quick"), 5)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert response.json()["code"] == "database-busy"
        stats = exhaustible.pool_stats()
        assert (stats.waits, stats.timeouts) == (1, 1)
        release.set()
        assert (await held).status_code == 200
        assert (await client.get("/v1/quick")).json() == 0
    assert exhaustible.pool_stats().in_use == 0


async def test_pool_figures(live: Live) -> None:
    db = live(pool_size=2, max_overflow=3)
    assert db.pool_stats().in_use == 0
    async with db.transaction() as a, db.transaction(read_only=True) as b:
        pass
    async with db.transaction():
        inner: Any = db.pool_stats()
        # one transaction: a nested transaction() is a savepoint, not a second connection
        async with db.transaction():
            assert db.pool_stats().in_use == inner.in_use == 1
    stats = db.pool_stats()
    assert (stats.size, stats.max_overflow, stats.in_use, stats.overflow) == (2, 3, 0, 0)
    assert stats.idle >= 1
    assert a is b


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_statement_timeout_stops_runaway_queries(live: Live) -> None:
    db = live(statement_timeout=0.2)
    async with db.transaction(read_only=True) as tx:
        assert await tx.scalar(text("SHOW statement_timeout")) == "200ms"
        assert await tx.scalar(text("SHOW application_name")) == "suite"
    with pytest.raises(DatabaseBusy, match="statement timeout"):
        async with db.transaction() as tx:
            await tx.execute(text("SELECT pg_sleep(3)"))


async def test_the_transactional_decorator_makes_route_handlers(live: Live) -> None:
    db = live()
    service = create_service("deco", "1.0.0", settings=load_settings())
    v1 = service.api(1)

    @v1.post("/items/{item_id}", status_code=201)
    @db.transactional()
    async def create(tx: AsyncSession, item_id: int, name: str) -> dict[str, Any]:
        tx.add(Item(id=item_id, name=name))
        await tx.flush()
        return {"id": item_id, "name": name}

    service.include(v1)
    async with service_client(service) as client:
        created = await client.post("/v1/items/5", params={"name": "five"})
        assert created.status_code == 201, created.text
        duplicate = await client.post("/v1/items/5", params={"name": "again"})
        assert duplicate.status_code == 409
        assert duplicate.json()["code"] == "constraint-violation"
        schema = (await client.get("/openapi.json")).json()
        names = [p["name"] for p in schema["paths"]["/v1/items/{item_id}"]["post"]["parameters"]]
        assert names == ["item_id", "name"]  # no session parameter leaks out
    assert await create(6, name="six") == {"id": 6, "name": "six"}
    with pytest.raises(TypeError, match="session"):
        db.transactional()(lambda: None)  # type: ignore[arg-type]


WRITER = """
import asyncio, sys
from sqlalchemy import text
from lms_shared.db import Database, DatabaseConfig

async def main(url, who):
    db = Database(DatabaseConfig.for_url(url, service="suite", busy_timeout=10))
    await db.start()
    print("ready", flush=True)
    sys.stdin.readline()  # every writer starts at once
    for i in range(100):
        await db.run(lambda tx: tx.execute(
            text("INSERT INTO items (id, name, rank) VALUES (:id, :name, 0)"),
            {"id": int(who) * 1000 + i, "name": who},
        ))
    await db.stop()

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_processes_of_one_machine_share_the_sqlite_file(
    live: Live, database_url: str
) -> None:
    db = live(busy_timeout=10)
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, database_url, "2", stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    assert other.stdin is not None
    assert other.stdout is not None
    while (line := await asyncio.wait_for(other.stdout.readline(), 60)) != b"ready\n":
        assert line, (await other.communicate())[1].decode()
    other.stdin.write(b"go\n")  # both write at once: this process and the other one
    for i in range(100):
        await db.run(lambda tx, i=i: tx.execute(
            text("INSERT INTO items (id, name, rank) VALUES (:id, 'here', 0)"), {"id": i}
        ))  # fmt: skip
    _, err = await other.communicate()
    assert other.returncode == 0, err.decode()
    async with db.transaction(read_only=True) as tx:
        assert await tx.scalar(select(func.count()).select_from(Item)) == 200


def test_models_share_nothing_between_bases() -> None:
    from sqlalchemy.orm import DeclarativeBase

    from lms_shared.db import NAMING_CONVENTION, Model

    class Other(Model, DeclarativeBase):
        pass

    assert Other.metadata is not Base.metadata
    assert Other.registry is not Base.registry
    assert Other.metadata.naming_convention == NAMING_CONVENTION


async def test_a_whole_service_can_run_on_a_rolled_back_database(database_url: str) -> None:
    service = create_service("rb", "1.0.0", settings=load_settings(database_url=database_url))
    v1 = service.api(1)

    @v1.post("/items/{item_id}", status_code=201)
    @service.db.transactional()
    async def create(tx: AsyncSession, item_id: int) -> int:
        tx.add(Item(id=item_id, name="x"))
        return item_id

    service.include(v1)
    async with rollback_database(service.db, metadata=Base.metadata):
        async with service_client(service) as client:
            assert (await client.post("/v1/items/1")).status_code == 201
            assert (await client.post("/v1/items/1")).status_code == 409
        async with service.db.transaction(read_only=True) as tx:
            assert await tx.scalar(select(func.count()).select_from(Item)) == 1
    await service.db.stop()
    async with service.db.engine.connect() as conn:  # rolled back: not even the tables
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert "items" not in tables
    await service.db.stop()
