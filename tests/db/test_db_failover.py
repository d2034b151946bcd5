"""Failover on a private PostgreSQL cluster: restarts, outages, several hosts, replicas.

The module starts its own cluster (initdb/pg_ctl on a free port, in a temp
folder) so it can stop and restart it; the shared server is only used as a
second, writable host.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from tests.db.db_models import Base, Item

from lms_shared import SystemClock, create_service, load_settings
from lms_shared.db import Database, DatabaseConfig, DatabaseUnavailable
from lms_shared.testing import CapturedLogs, ManualClock, server_missing, service_client

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster run as the ``postgres`` user."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.data.mkdir(mode=0o700)
        account = pwd.getpwnam("postgres")
        os.chown(self.data, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "log"),
                  "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str) -> None:
        self.stop(mode)
        self.start()


def _unavailable() -> str | None:
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL binaries in {PG_BIN}"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "starting a private cluster needs root and runuser"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user"
    return None


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = _unavailable()
    if reason is not None:
        server_missing(reason)
    root = Path(tempfile.mkdtemp(prefix="lms-pg-", dir="/tmp"))
    root.chmod(0o755)  # postgres must traverse it
    pg = Cluster(root)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already down
            pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def on_cluster(cluster: Cluster) -> Database:
    """The cluster's database with fresh test tables."""
    db = Database(DatabaseConfig.for_url(cluster.url, service="failover"))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    await db.stop()
    return db


async def port_of(tx: AsyncSession) -> int:
    return int(await tx.scalar(text("SELECT current_setting('port')")) or 0)


async def test_writes_survive_restarts_and_the_service_recovers(
    cluster: Cluster, on_cluster: Database, logs: CapturedLogs
) -> None:
    db = Database(
        DatabaseConfig.for_url(cluster.url, service="failover", connect_retries=12),
        clock=SystemClock(),
    )
    committed: list[int] = []
    unknown: list[int] = []
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            item = Item(id=n, name=f"write {n}")
            try:
                await db.run(lambda tx, item=item: _add(tx, item))
            except DatabaseUnavailable as exc:
                if not exc.outcome_unknown:
                    raise  # anything else must have been retried
                unknown.append(n)
            else:
                committed.append(n)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(writer())
    try:
        for mode in ("fast", "immediate"):  # a clean shutdown, then a crash
            await _until(lambda: len(committed) >= 20)
            before = len(committed)
            await asyncio.to_thread(cluster.restart, mode)
            await _until(lambda before=before: len(committed) >= before + 20)
    finally:
        stop.set()
        await task
    async with db.transaction(read_only=True) as tx:
        stored = set(await tx.scalars(select(Item.id)))
    assert set(committed) <= stored  # no committed write lost
    assert stored <= set(committed) | set(unknown)
    assert len(committed) >= 60
    assert logs.events("reconnecting to the database")  # the restarts did hit the writer
    assert "postgresql at" in await db.ping()
    await db.stop()


async def _add(tx: AsyncSession, item: Item) -> None:
    tx.add(Item(id=item.id, name=item.name))


async def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_database_that_stays_down_is_a_clear_error_after_bounded_retries(
    cluster: Cluster, on_cluster: Database, logs: CapturedLogs
) -> None:
    clock = ManualClock(datetime.now(UTC), auto_advance=True)
    db = Database(
        DatabaseConfig.for_url(cluster.url, service="failover", connect_retries=4), clock=clock
    )
    assert await db.run(lambda tx: tx.scalar(select(func.count()).select_from(Item))) == 0
    settings = load_settings(database_url=cluster.url, database_fail_fast=False)
    service = create_service("outage", "1.0.0", settings=settings)
    await asyncio.to_thread(cluster.stop, "fast")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await db.run(lambda tx: tx.scalar(select(1)))
        error = caught.value
        assert error.attempts == 4
        assert error.host == f"127.0.0.1:{cluster.port}"
        assert f"127.0.0.1:{cluster.port}" in str(error)
        assert "gave up after 4 attempts" in str(error)
        assert error.status == 503
        assert error.headers["Retry-After"]
        assert len(clock.slept) == 3  # backoff between attempts, each bounded
        assert all(0 < delay <= 2.0 for delay in clock.slept)
        with pytest.raises(DatabaseUnavailable):
            await db.ping()
        _ = service.db
        async with service_client(service) as client:
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert "output" not in ready.json()["checks"]["database"]  # the host is for the log
            (failed,) = logs.events("health check failed")
            assert f"127.0.0.1:{cluster.port}" in failed["error"]
    finally:
        await asyncio.to_thread(cluster.start)
        await db.stop()
    assert await db.run(lambda tx: tx.scalar(select(1))) == 1  # and back once it is up
    await db.stop()


async def test_several_hosts_connect_to_a_live_one(cluster: Cluster) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()},127.0.0.1:{cluster.port}/postgres"
    db = Database(DatabaseConfig.for_url(url, service="failover"))
    assert db.config.where.endswith(f",127.0.0.1:{cluster.port}")
    assert db.config.url.query["target_session_attrs"] == "read-write"
    async with db.transaction() as tx:
        assert await port_of(tx) == cluster.port
    await db.stop()


async def test_the_writable_host_is_chosen_and_reads_go_to_the_replica(
    cluster: Cluster, postgres_url: str
) -> None:
    shared = DatabaseConfig.for_url(postgres_url).url
    shared_port = shared.port or 5432
    await _configure(cluster, f'CREATE DATABASE "{shared.database}"')  # one name on both hosts
    await _configure(cluster, "ALTER SYSTEM SET default_transaction_read_only = on")
    hosts = f"127.0.0.1:{cluster.port},{shared.host}:{shared_port}"
    db = Database(
        DatabaseConfig.for_url(
            f"postgresql://postgres@{hosts}/{shared.database}",
            service="failover",
            replicas=[cluster.url.rsplit("/", 1)[0] + f"/{shared.database}"],
        )
    )
    try:
        async with db.transaction() as tx:
            assert await port_of(tx) == shared_port  # the read-only host was skipped
        async with db.transaction(read_only=True) as tx:
            assert await port_of(tx) == cluster.port  # reads on the replica
        assert await db.run(port_of, read_only=True) == cluster.port
    finally:
        await db.stop()
        await _configure(cluster, "ALTER SYSTEM RESET default_transaction_read_only")


async def _configure(cluster: Cluster, statement: str) -> None:
    """Change the cluster's configuration and reload it (makes it look like a standby)."""
    admin = Database(DatabaseConfig.for_url(cluster.url, service="failover"))
    async with admin.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        name = statement.partition('DATABASE "')[2].rstrip('"')
        exists = "SELECT count(*) FROM pg_database WHERE datname = :name"
        if not name or not await autocommit.scalar(text(exists), {"name": name}):
            await autocommit.execute(text(statement))
        await autocommit.execute(text("SELECT pg_reload_conf()"))
    await admin.stop()


async def test_reads_fall_back_to_the_primary_when_the_replica_is_down(cluster: Cluster) -> None:
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/postgres"
    db = Database(
        DatabaseConfig.for_url(cluster.url, service="failover", replicas=[dead]),
        clock=ManualClock(datetime.now(UTC), auto_advance=True),
    )
    assert await db.run(port_of, read_only=True) == cluster.port
    await db.stop()
