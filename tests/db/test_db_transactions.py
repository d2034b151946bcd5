"""Units of work: commit, rollback, savepoints, read-only, retries (both backends)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from tests.db.conftest import Live
from tests.db.db_models import Course, Item

from lms_shared.db import ConstraintViolation, Database, StaleRead, TransactionConflict
from lms_shared.testing import ManualClock


async def count(db: Database, model: Any = Item) -> int:
    async with db.transaction(read_only=True, all_tenants=True) as tx:
        return int(await tx.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_transaction_commits_on_success(database: Database) -> None:
    async with database.transaction() as tx:
        tx.add(Item(id=1, name="a"))
    assert await count(database) == 1


async def add_then_fail(db: Database, item_id: int, error: Exception) -> None:
    async with db.transaction() as tx:
        tx.add(Item(id=item_id, name="doomed"))
        await tx.flush()
        raise error


async def test_a_transaction_rolls_back_and_reraises_the_callers_error(database: Database) -> None:
    with pytest.raises(KeyError, match="boom"):
        await add_then_fail(database, 1, KeyError("boom"))
    assert await count(database) == 0


async def test_a_nested_transaction_is_a_savepoint(database: Database) -> None:
    async with database.transaction() as outer:
        outer.add(Item(id=1, name="kept"))
        with pytest.raises(RuntimeError):
            await add_then_fail(database, 2, RuntimeError())  # the same session, a savepoint
        async with database.transaction() as inner:
            assert inner is outer
            inner.add(Item(id=3, name="kept too"))
    async with database.transaction(read_only=True) as tx:
        assert list(await tx.scalars(select(Item.id).order_by(Item.id))) == [1, 3]


async def test_explicit_begin_nested_works_too(database: Database) -> None:
    async with database.transaction() as tx:
        savepoint = await tx.begin_nested()
        tx.add(Item(id=1, name="a"))
        await tx.flush()
        await savepoint.rollback()
        tx.add(Item(id=2, name="b"))
    async with database.transaction(read_only=True) as tx:
        assert list(await tx.scalars(select(Item.id))) == [2]


async def test_a_read_only_transaction_refuses_writes(live: Live) -> None:
    db = live()
    with pytest.raises(DBAPIError):
        async with db.transaction(read_only=True) as tx:
            await tx.execute(text("INSERT INTO items (id, name, rank) VALUES (1, 'x', 0)"))


async def test_a_duplicate_key_is_a_typed_409(database: Database) -> None:
    async with database.transaction() as tx:
        tx.add(Item(id=1, name="a"))
    with pytest.raises(ConstraintViolation) as caught:
        async with database.transaction() as tx:
            tx.add(Item(id=1, name="again"))
    assert caught.value.status == 409
    assert isinstance(caught.value.__cause__, DBAPIError)
    assert "items" not in (caught.value.detail or "")  # no schema details for clients


async def test_run_returns_the_work_result(database: Database) -> None:
    async def add(tx: AsyncSession) -> int:
        tx.add(Item(id=7, name="seven"))
        await tx.flush()
        return 7

    assert await database.run(add) == 7
    assert await count(database) == 1


async def test_run_inside_a_transaction_is_a_savepoint_run_once(database: Database) -> None:
    calls = 0

    async def fail(tx: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        tx.add(Item(id=1, name="x"))
        await tx.flush()
        raise OperationalError("SELECT", {}, _Busy())

    async with database.transaction() as tx:
        tx.add(Item(id=2, name="kept"))
        with pytest.raises(TransactionConflict):
            await database.run(fail)
    assert calls == 1
    assert await count(database) == 1


class _Busy(Exception):
    """A driver error that reads as SQLite's SQLITE_BUSY."""

    sqlite_errorcode = 5
    sqlite_errorname = "SQLITE_BUSY"


class _Deadlock(Exception):
    """A driver error that reads as PostgreSQL's deadlock_detected."""

    sqlstate = "40P01"


@pytest.mark.parametrize("cause", [_Busy, _Deadlock])
async def test_retries_are_bounded_and_the_final_error_is_typed(
    live: Live, clock: ManualClock, cause: type[Exception]
) -> None:
    db = live(retry_attempts=4, retry_backoff=0.1)
    calls = 0

    async def always_conflicts(tx: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        tx.add(Item(id=calls, name="lost"))
        await tx.flush()
        raise OperationalError("UPDATE", {}, cause())

    with pytest.raises(TransactionConflict) as caught:
        await db.run(always_conflicts)
    assert calls == 4
    assert caught.value.attempts == 4
    assert caught.value.sqlstate in {"SQLITE_BUSY", "40P01"}
    assert caught.value.status == 409
    assert len(clock.slept) == 3  # between attempts, not after the last one
    for attempt, delay in enumerate(clock.slept, start=1):
        assert 0.05 * 2 ** (attempt - 1) <= delay <= 0.1 * 2 ** (attempt - 1)
    assert await count(db) == 0  # every attempt was rolled back


class _StreamMoved(StaleRead):
    """A StaleRead of the caller's own, with its own problem code."""


@pytest.mark.parametrize(
    "error",
    [
        lambda: OperationalError("UPDATE", {}, _Deadlock()),
        lambda: _StreamMoved("read version 1, now 2"),  # optimistic concurrency of our own
    ],
    ids=["deadlock", "stale-read"],
)
async def test_a_conflict_is_retried_until_it_succeeds(
    live: Live, clock: ManualClock, error: Callable[[], Exception]
) -> None:
    db = live(retry_attempts=3)
    calls = 0

    async def flaky(tx: AsyncSession) -> str:
        nonlocal calls
        calls += 1
        tx.add(Item(id=calls, name=f"try {calls}"))
        await tx.flush()
        if calls < 3:
            raise error()
        return "done"

    assert await db.run(flaky) == "done"
    assert calls == 3
    assert len(clock.slept) == 2
    async with db.transaction(read_only=True) as tx:
        assert list(await tx.scalars(select(Item.name))) == ["try 3"]


async def test_a_stale_read_that_persists_surfaces_as_it_is(live: Live) -> None:
    db = live(retry_attempts=3)
    calls = 0

    async def always_stale(tx: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        tx.add(Item(id=calls, name="lost"))
        await tx.flush()
        raise _StreamMoved("someone else keeps writing")

    with pytest.raises(_StreamMoved, match="keeps writing") as caught:
        await db.run(always_stale)
    assert calls == 3
    assert caught.value.status == 409
    assert await count(db) == 0  # every attempt was rolled back
    calls = 0
    with pytest.raises(_StreamMoved):  # a plain transaction() is one attempt
        async with db.transaction() as tx:
            await always_stale(tx)
    assert calls == 1


async def test_a_non_retryable_error_is_not_retried(live: Live) -> None:
    db = live()
    async with db.transaction() as tx:
        tx.add(Item(id=1, name="a"))
    calls = 0

    async def duplicate(tx: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        tx.add(Item(id=1, name="dup"))
        await tx.flush()

    with pytest.raises(ConstraintViolation):
        await db.run(duplicate)
    assert calls == 1

    async def buggy(tx: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await db.run(buggy)
    assert calls == 2


async def test_backoff_sleeps_on_the_injected_clock(live: Live) -> None:
    clock = ManualClock()
    db = live()
    db.clock = clock
    calls = 0

    async def conflicts_once(tx: AsyncSession) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OperationalError("UPDATE", {}, _Deadlock())
        return calls

    task = asyncio.create_task(db.run(conflicts_once))
    for _ in range(200):
        if clock.sleepers:
            break
        await asyncio.sleep(0.01)
    assert clock.sleepers == 1
    assert not task.done()
    await clock.advance(10)
    assert await task == 2


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_writers_queue_on_the_lock_and_a_timeout_is_a_conflict(live: Live) -> None:
    db = live(busy_timeout=0.05, retry_attempts=2)
    holder = live()
    async with holder.transaction() as held:
        held.add(Item(id=1, name="holds the write lock"))
        await held.flush()
        with pytest.raises(TransactionConflict) as caught:
            async with db.transaction() as tx:
                tx.add(Item(id=2, name="blocked"))
        assert caught.value.sqlstate is not None
        assert caught.value.sqlstate.startswith("SQLITE_BUSY")
    # once the lock is released, run() gets through
    done = await db.run(lambda tx: tx.scalar(select(func.count()).select_from(Item)))
    assert done == 1


async def test_invalid_arguments_are_refused(database: Database) -> None:
    with pytest.raises(ValueError, match="not both"):
        database.transaction(tenant="a", all_tenants=True)
    with pytest.raises(ValueError, match="at least 1"):
        await database.run(lambda tx: tx.scalar(select(1)), attempts=0)


async def test_timestamps_come_from_the_injected_clock(database: Database) -> None:
    clock = ManualClock()
    database.clock = clock
    async with database.transaction(tenant="t1") as tx:
        tx.add(Course(id=1, title="Rust"))
    await clock.advance(60)
    async with database.transaction(tenant="t1") as tx:
        course = await tx.get(Course, 1)
        assert course is not None
        course.seats = 5
    async with database.transaction(tenant="t1", read_only=True) as tx:
        course = await tx.get(Course, 1)
        assert course is not None
        assert course.created_at == datetime(2026, 1, 1, tzinfo=UTC)
        assert (course.updated_at - course.created_at).total_seconds() == 60
        assert course.created_at.tzinfo is not None


async def test_a_nested_transaction_keeps_the_outer_tenant(database: Database) -> None:
    async with database.transaction(tenant="acme") as outer:
        async with database.transaction(tenant="acme") as inner:
            assert inner is outer
        with pytest.raises(ValueError, match="cannot change the tenant"):
            await database.run(lambda tx: tx.scalar(select(1)), tenant="globex")
