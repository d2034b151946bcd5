"""Real serialization failures and deadlocks on PostgreSQL, retried by ``run()``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from tests.db.conftest import Live
from tests.db.db_models import Item

from lms_shared.db import TransactionConflict
from lms_shared.testing import ManualClock

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgresql"])]


async def test_a_real_serialization_failure_is_retried_and_succeeds(
    live: Live, clock: ManualClock
) -> None:
    db = live(retry_attempts=3)
    both_read = asyncio.Barrier(2)
    attempts: dict[str, int] = {"a": 0, "b": 0}

    def add_after_reading_total(name: str, item_id: int) -> Work[int]:
        async def work(tx: AsyncSession) -> int:
            attempts[name] += 1
            total = await tx.scalar(select(func.coalesce(func.sum(Item.rank), 0)))
            if attempts[name] == 1:
                await both_read.wait()  # both transactions have read the same snapshot
            tx.add(Item(id=item_id, name=name, rank=int(total or 0) + 1))
            await tx.flush()
            return int(total or 0)

        return work

    totals = await asyncio.gather(
        db.run(add_after_reading_total("a", 1), isolation="SERIALIZABLE"),
        db.run(add_after_reading_total("b", 2), isolation="SERIALIZABLE"),
    )
    # one of them hit SQLSTATE 40001 and ran again, seeing the other's row
    assert sorted(attempts.values()) == [1, 2]
    assert sorted(totals) == [0, 1]
    assert len(clock.slept) == 1
    async with db.transaction(read_only=True) as tx:
        ranks = sorted(await tx.scalars(select(Item.rank)))
    assert ranks == [1, 2]  # serial outcome: the second saw the first


async def test_the_conflict_surfaces_typed_when_attempts_run_out(live: Live) -> None:
    db = live()
    both_read = asyncio.Barrier(2)

    def writer(item_id: int) -> Work[None]:
        async def work(tx: AsyncSession) -> None:
            await tx.scalar(select(func.count()).select_from(Item))
            await both_read.wait()
            tx.add(Item(id=item_id, name="w"))
            await tx.flush()

        return work

    results = await asyncio.gather(
        db.run(writer(1), isolation="SERIALIZABLE", attempts=1),
        db.run(writer(2), isolation="SERIALIZABLE", attempts=1),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], TransactionConflict)
    assert failures[0].sqlstate == "40001"
    assert failures[0].attempts == 1


async def test_a_real_deadlock_is_retried(live: Live, clock: ManualClock) -> None:
    db = live()
    async with db.transaction() as tx:
        tx.add_all([Item(id=1, name="one"), Item(id=2, name="two")])
    first_locks = asyncio.Barrier(2)
    attempts = {"fwd": 0, "rev": 0}

    def lock_in_order(name: str, order: tuple[int, int]) -> Work[None]:
        async def work(tx: AsyncSession) -> None:
            attempts[name] += 1
            await tx.execute(text("SET LOCAL deadlock_timeout = '50ms'"))
            await tx.execute(update(Item).where(Item.id == order[0]).values(rank=Item.rank + 1))
            if attempts[name] == 1:
                await first_locks.wait()  # each holds one row, then wants the other's
            await tx.execute(update(Item).where(Item.id == order[1]).values(rank=Item.rank + 1))

        return work

    await asyncio.gather(db.run(lock_in_order("fwd", (1, 2))), db.run(lock_in_order("rev", (2, 1))))
    assert sorted(attempts.values()) == [1, 2]  # SQLSTATE 40P01 for one, then it went through
    async with db.transaction(read_only=True) as tx:
        assert list(await tx.scalars(select(Item.rank).order_by(Item.id))) == [2, 2]
