"""Alembic per service: programmatic runs, own version tables, the lock, the CLI."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from tests.db.conftest import Live
from tests.db.db_models import Base
from typer.testing import CliRunner

from lms_shared import create_service, load_settings
from lms_shared.cli import app as cli
from lms_shared.db import Database, DatabaseUnavailable, MigrationError, Migrations
from lms_shared.testing import LifespanError, capture_logs, rollback_database, service_client

NOT_MIGRATED = (
    "database: not at the migrations' head "
    "(run `lms-shared db upgrade` or set LMS_DATABASE_MIGRATE_ON_START=true)"
)

FIRST = '''
"""create notes"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("body", sa.String(100)))
    op.execute({pause!r})


def downgrade() -> None:
    op.drop_table("notes")
'''
SECOND = '''
"""add notes.rank"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("notes") as batch:
        batch.add_column(sa.Column("rank", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("notes") as batch:
        batch.drop_column("rank")
'''


def write_revisions(folder: Path, backend: str, pause: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    statement = f"SELECT pg_sleep({pause})" if backend == "postgresql" else "SELECT 1"
    (folder / "0001_create_notes.py").write_text(textwrap.dedent(FIRST.format(pause=statement)))
    (folder / "0002_add_rank.py").write_text(textwrap.dedent(SECOND))
    return folder


async def tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_downgrade_current_and_history(
    live: Live, backend: str, tmp_path: Path
) -> None:
    db = live()
    migrations = db.use_migrations(write_revisions(tmp_path / "migrations", backend))
    assert migrations.version_table == "alembic_version_suite"
    assert await migrations.current(db.engine) == []
    assert await migrations.upgrade(db.engine) == ["0001", "0002"]
    assert await migrations.upgrade(db.engine) == []  # already at head
    assert await migrations.current(db.engine) == ["0002"]
    assert {"notes", "alembic_version_suite"} <= await tables(db)
    async with db.transaction() as tx:
        await tx.execute(text("INSERT INTO notes (id, body) VALUES (1, 'x')"))
    assert await migrations.downgrade(db.engine, "-1") == ["0002"]
    assert await migrations.current(db.engine) == ["0001"]
    assert await migrations.downgrade(db.engine, "base") == ["0001"]
    assert "notes" not in await tables(db)
    history = migrations.history()
    assert [(r.revision, r.down_revisions, r.is_head) for r in history] == [
        ("0002", ("0001",), True),
        ("0001", (), False),
    ]
    assert history[0].message == "add notes.rank"


async def test_each_service_has_its_own_version_table(
    live: Live, backend: str, tmp_path: Path
) -> None:
    folder = write_revisions(tmp_path / "m", backend)
    courses = live()
    courses.migrations = Migrations(folder, version_table="alembic_version_courses")
    grading = live()
    grading.migrations = Migrations(tmp_path / "empty", version_table="alembic_version_grading")
    (tmp_path / "empty").mkdir()
    await courses.migrations.upgrade(courses.engine, "0001")
    await grading.migrations.upgrade(grading.engine)
    assert await courses.migrations.current(courses.engine) == ["0001"]
    assert await grading.migrations.current(grading.engine) == []


MIGRATOR = """
import asyncio, json, sys
from lms_shared.db import Database, DatabaseConfig

async def main(url, schema, folder):
    db = Database(DatabaseConfig.for_url(url, service="suite", schema=schema or None))
    migrations = db.use_migrations(folder)
    async with db.engine.connect():
        pass  # connected and imported: ready
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(await migrations.upgrade(db.engine)))
    await db.stop()

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.slow
async def test_two_concurrent_migrators_in_two_processes_apply_once_and_end_at_head(
    live: Live, database_url: str, backend: str, tmp_path: Path
) -> None:
    db = live()
    folder = write_revisions(tmp_path / "migrations", backend, pause=0.5)
    migrations = db.use_migrations(folder)
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MIGRATOR, database_url, db.config.schema or "", str(folder),
        stdin=PIPE, stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    assert other.stdin is not None
    assert other.stdout is not None
    while (line := await asyncio.wait_for(other.stdout.readline(), 60)) != b"ready\n":
        assert line, (await other.communicate())[1].decode()
    other.stdin.write(b"go\n")  # both start at once: one here, one there
    here = await migrations.upgrade(db.engine)
    out, err = await other.communicate()
    assert other.returncode == 0, err.decode()
    there = json.loads(out.decode().strip().splitlines()[-1])
    assert sorted([here, there]) == [[], ["0001", "0002"]]
    assert await migrations.current(db.engine) == ["0002"]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_advisory_lock_holds_migrations_back(live: Live, tmp_path: Path) -> None:
    db, holder = live(), live()
    migrations = db.use_migrations(write_revisions(tmp_path / "m", "postgresql"))
    async with holder.engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": migrations.lock_key})
        await conn.commit()
        upgrade = asyncio.create_task(migrations.upgrade(db.engine))
        await asyncio.sleep(0.5)
        assert not upgrade.done()  # waiting for the lock, as a second replica would
        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": migrations.lock_key})
        await conn.commit()
        assert await asyncio.wait_for(upgrade, 10) == ["0001", "0002"]


async def test_runs_in_one_process_take_turns(live: Live, backend: str, tmp_path: Path) -> None:
    folder = write_revisions(tmp_path / "migrations", backend, pause=0.1)
    first, second = live(), live()
    applied = await asyncio.gather(
        first.use_migrations(folder).upgrade(first.engine),
        second.use_migrations(folder).upgrade(second.engine),
    )
    assert sorted(applied) == [[], ["0001", "0002"]]


async def test_autogenerate_writes_a_revision_from_the_models(
    live: Live, backend: str, tmp_path: Path
) -> None:
    db = live()
    async with db.engine.begin() as conn:  # start from an empty schema
        await conn.run_sync(Base.metadata.drop_all)
    migrations = db.use_migrations(tmp_path / "migrations", metadata=Base.metadata)
    path = await migrations.revision("create the models", autogenerate=True, engine=db.engine)
    source = path.read_text()
    assert 'op.create_table("courses"' in source or "op.create_table('courses'" in source
    assert "sa.DateTime(timezone=True)" in source  # UtcDateTime rendered portably
    assert "lms_shared" not in source
    assert await migrations.upgrade(db.engine) == [migrations.heads()[0]]
    assert {"courses", "lessons", "items"} <= await tables(db)
    empty = await migrations.revision("nothing changed", autogenerate=True, engine=db.engine)
    assert "op.create_table" not in empty.read_text()


async def test_migration_errors_are_typed(live: Live, backend: str, tmp_path: Path) -> None:
    db = live()
    with pytest.raises(MigrationError, match="no migrations folder"):
        await Migrations(tmp_path / "missing", version_table="v").upgrade(db.engine)
    migrations = db.use_migrations(write_revisions(tmp_path / "m", backend))
    with pytest.raises(MigrationError, match="nope"):
        await migrations.upgrade(db.engine, "nope")
    with pytest.raises(MigrationError, match="autogenerate needs"):
        await migrations.revision("x", autogenerate=True)
    (tmp_path / "m" / "0003_broken.py").write_text(
        'revision = "0003"\ndown_revision = "0002"\n'
        "from alembic import op\n\n"
        "def upgrade():\n    op.execute('SELECT * FROM no_such_table')\n"
    )
    with pytest.raises(MigrationError, match="failed"):
        await migrations.upgrade(db.engine)
    assert await migrations.current(db.engine) == []  # one transaction: nothing applied


async def test_an_unreachable_database_is_a_typed_error(tmp_path: Path) -> None:
    migrations = Migrations(tmp_path, version_table="v")
    db = Database.from_settings(
        "x", load_settings(database_url="postgresql+asyncpg://u@127.0.0.1:1/db")
    )
    with pytest.raises(DatabaseUnavailable, match=r"127\.0\.0\.1:1"):
        await migrations.upgrade(db.engine)
    await db.stop()


async def test_migrate_on_start(
    database_url: str, backend: str, live: Live, tmp_path: Path
) -> None:
    schema = live().config.schema
    settings = load_settings(
        database_url=database_url, database_migrate_on_start=True, database_schema=schema
    )
    service = create_service("notes", "1.0.0", settings=settings)
    service.db.use_migrations(write_revisions(tmp_path / "migrations", backend))
    async with service_client(service) as client:
        assert (await client.get("/health/ready")).status_code == 200
        assert "notes" in await tables(service.db)
    service = create_service("notes", "1.0.0", settings=settings)
    _ = service.db  # no use_migrations: refusing to start beats running unmigrated
    with pytest.raises(LifespanError, match="use_migrations"):
        async with service_client(service):
            pass


def test_the_cli_runs_migrations(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"
    runner = CliRunner()
    common = ["--migrations", str(folder), "--url", url, "--name", "courses"]

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["db", *args, *common])
        assert result.exit_code == 0, result.output
        return result.output

    assert "wrote" in run("revision", "-m", "first step")
    assert "wrote" in run("revision", "-m", "second step")
    assert "first step" in run("history")
    assert "(no revision applied)" in run("current")
    assert "applied:" in run("upgrade")
    assert "(head)" in run("current")
    assert "already up to date" in run("upgrade")
    assert "reverted:" in run("downgrade", "base")
    failed = runner.invoke(cli, ["db", "upgrade", "nope", *common])
    assert failed.exit_code == 1
    assert "nope" in failed.output
    missing = runner.invoke(cli, ["db", "upgrade"])
    assert missing.exit_code == 2
    unreachable = runner.invoke(
        cli, ["db", "current", "--migrations", str(folder), "--url", "postgresql://u@127.0.0.1:1/x"]
    )
    assert unreachable.exit_code == 1
    assert "127.0.0.1:1" in unreachable.output


def test_the_cli_finds_migrations_through_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_revisions(tmp_path / "migrations", "sqlite")
    (tmp_path / "notes_app.py").write_text(
        "from lms_shared import create_service\n"
        "service = create_service('notes', '1.0.0')\n"
        f"service.db.use_migrations({str(folder)!r})\n"
    )
    monkeypatch.setenv("LMS_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(cli, ["db", "upgrade", "--service", "notes_app:service"])
    assert result.exit_code == 0, result.output
    assert "0001, 0002" in result.output
    assert (tmp_path / "state" / "notes.sqlite3").exists()
    result = CliRunner().invoke(cli, ["db", "current", "--service", "notes_app"])
    assert "0002 (head)" in result.output


async def test_migrate_on_start_creates_a_missing_schema(postgres_url: str, tmp_path: Path) -> None:
    import secrets

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    schema = f"lms_new_{secrets.token_hex(4)}"
    settings = load_settings(
        database_url=postgres_url, database_migrate_on_start=True, database_schema=schema
    )
    service = create_service("notes", "1.0.0", settings=settings)
    service.db.use_migrations(write_revisions(tmp_path / "migrations", "postgresql"))
    engine = create_async_engine(postgres_url)
    try:
        async with service_client(service) as client:
            assert (await client.get("/health/ready")).status_code == 200
        async with engine.connect() as conn:
            found = await conn.scalar(
                text(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema = :s AND table_name = 'notes'"
                ),
                {"s": schema},
            )
        assert found == 1
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


async def test_not_ready_until_the_database_is_at_head(
    database_url: str, backend: str, live: Live, tmp_path: Path
) -> None:
    schema = live().config.schema
    settings = load_settings(database_url=database_url, database_schema=schema)
    service = create_service("notes", "1.0.0", settings=settings)
    migrations = service.db.use_migrations(write_revisions(tmp_path / "migrations", backend))
    async with service_client(service) as client:
        with capture_logs() as logs:
            behind = await client.get("/health/ready")
        assert behind.status_code == 503
        assert behind.json()["checks"]["database"]["output"] == NOT_MIGRATED
        (logged,) = logs.events("database not at the migrations' head")
        assert (logged["current"], logged["heads"]) == ([], ["0002"])
        await migrations.upgrade(service.db.engine)
        assert (await client.get("/health/ready")).status_code == 200


async def test_ready_on_the_rolled_back_per_test_database(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    folder = write_revisions(tmp_path / "migrations", backend)
    settings = load_settings(database_url=database_url, database_migrate_on_start=True)
    service = create_service("notes", "1.0.0", settings=settings)
    migrations = service.db.use_migrations(folder)
    async with rollback_database(service.db) as conn:  # migrated inside the test's transaction
        async with service_client(service) as client:
            ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert await migrations.current(conn) == ["0002"]
    await service.db.stop()

    plain = create_service("notes", "1.0.0", settings=load_settings(database_url=database_url))
    migrations = plain.db.use_migrations(folder)
    async with rollback_database(plain.db) as conn, service_client(plain) as client:
        behind = await client.get("/health/ready")  # says why at once, not "locked"
        assert behind.status_code == 503
        assert behind.json()["checks"]["database"]["output"] == NOT_MIGRATED
        assert await migrations.upgrade(conn) == ["0001", "0002"]  # the test migrates
        assert (await client.get("/health/ready")).status_code == 200
    await plain.db.stop()

    left = await tables(plain.db)  # everything was rolled back, the migrations too
    await plain.db.stop()
    assert not {"notes", "alembic_version_notes"} & left
