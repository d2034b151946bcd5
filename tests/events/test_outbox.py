"""The transactional outbox on SQLite and PostgreSQL: committed means published, once confirmed.

The relay here sweeps once an hour of a ManualClock that never moves, so
every delivery in these tests comes from the commit waking it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import text

from lms_shared.db import Database
from lms_shared.events import (
    EventBus,
    MemoryInbox,
    MemoryTransport,
    Message,
    PublishFailed,
)
from lms_shared.events.sql import SqlOutbox
from lms_shared.testing import ManualClock
from lms_shared.testing._events import EventRecorder

from ._bus_models import CoursePublished
from ._sql_support import backend, same_database, sql_db, sql_schema, sql_url

__all__ = ["backend", "sql_db", "sql_schema", "sql_url"]  # fixtures used by name

HOUR = 3600.0


def course(title: str) -> CoursePublished:
    return CoursePublished(course_id=uuid.uuid4(), title=title)


def make_bus(db: Database, transport: MemoryTransport, clock: ManualClock) -> EventBus:
    bus = EventBus(
        transport,
        source="/courses",
        group="courses",
        clock=clock,
        relay_sweep=HOUR,
        inbox=MemoryInbox(),
    )
    bus.use_database(db, inbox=False)
    bus.publishes(CoursePublished)
    return bus


async def pending(db: Database) -> int:
    return await SqlOutbox(db).pending()


async def published(transport: MemoryTransport, count: int) -> list[str]:
    """The ids ``transport`` published, once there are ``count`` (or 10 s of real time passed)."""
    deadline = time.monotonic() + 10  # real time: the relay waits on the database
    while len(transport.published) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    return [m.id for m in transport.published]


async def test_an_event_is_published_after_its_transaction_commits_and_not_before(
    sql_db: Database,
) -> None:
    clock = ManualClock()
    transport = MemoryTransport(clock)
    bus = make_bus(sql_db, transport, clock)
    titles: list[str] = []

    @bus.subscribe(CoursePublished, group="search")
    async def index(event: CoursePublished) -> None:
        titles.append(event.title)

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        async with sql_db.transaction() as tx:
            await tx.execute(text("SELECT 1"))
            sent = await bus.publish(course("Rust"), outbox=tx)
            for _ in range(20):
                await asyncio.sleep(0)
            assert transport.published == []  # not before the commit
        await recorder.settled(sent.id)  # the commit woke the relay
        assert titles == ["Rust"]
        [message] = transport.published
        assert dict(message.attributes) == sent.attributes()  # trace context and all
        assert await bus.flush() == 0  # waits for the relay's transaction to end
        assert await pending(sql_db) == 0  # done once the broker confirmed
        assert clock.monotonic() == 0  # no sweep, no poll: the clock never moved
    finally:
        await bus.stop()


async def test_a_rolled_back_transaction_publishes_nothing(sql_db: Database) -> None:
    clock = ManualClock()
    transport = MemoryTransport(clock)
    bus = make_bus(sql_db, transport, clock)
    await bus.start()
    try:

        async def change_that_fails() -> None:
            async with sql_db.transaction() as tx:
                await bus.publish([course("a"), course("b")], outbox=tx)
                raise RuntimeError("the business change failed")

        with pytest.raises(RuntimeError, match="failed"):
            await change_that_fails()
        assert await bus.flush() == 0
        assert await pending(sql_db) == 0
        assert transport.published == []
    finally:
        await bus.stop()


async def test_after_a_relay_crash_a_restart_delivers_exactly_what_was_committed(
    sql_db: Database,
) -> None:
    clock = ManualClock()
    down = MemoryTransport(clock)
    first = make_bus(sql_db, down, clock)
    await first.start()
    down.reachable = False  # the broker goes away: the relay cannot publish
    committed: list[str] = []
    for title in ("a", "b", "c", "rolled-back", "d"):
        try:
            async with sql_db.transaction() as tx:
                event = await first.publish(course(title), outbox=tx)
                if title == "rolled-back":
                    raise RuntimeError("undo")
                committed.append(event.id)
        except RuntimeError:
            pass
    relay = first.relay
    assert relay is not None
    for _ in range(50):
        if relay.failures:
            break
        await asyncio.sleep(0.01)
    assert relay.failures >= 1
    assert "unreachable" in (relay.last_error or "")
    # the process dies: nothing is flushed, the rows stay in the outbox
    assert relay._task is not None
    relay._task.cancel()
    await asyncio.gather(relay._task, return_exceptions=True)
    assert await pending(sql_db) == 4

    restarted_db = same_database(sql_db)
    clock2 = ManualClock()
    up = MemoryTransport(clock2)
    second = make_bus(restarted_db, up, clock2)
    seen: list[str] = []

    @second.subscribe(CoursePublished, group="search")
    async def index(event: CoursePublished) -> None:
        seen.append(event.title)

    recorder = EventRecorder(second)
    await second.start()  # the relay publishes what is pending at once
    try:
        await recorder.wait_for(lambda o: len(o) == 4)
        assert [m.id for m in up.published] == committed  # in commit order
        assert seen == ["a", "b", "c", "d"]
        assert await second.flush() == 0
        assert await pending(restarted_db) == 0
    finally:
        await second.stop()
        await restarted_db.stop()
        down.reachable = True
        await first.stop()


class ConfirmsThenCrashes(MemoryTransport):
    """Stores the messages, then fails as if the process died before deleting the rows."""

    crashes = 1

    async def publish(self, messages: Sequence[Message]) -> None:
        await super().publish(messages)
        if self.crashes:
            self.crashes -= 1
            raise PublishFailed("the connection dropped after the broker stored the batch")


async def test_a_crash_between_confirm_and_delete_duplicates_and_the_inbox_absorbs_it(
    sql_db: Database,
) -> None:
    clock = ManualClock(auto_advance=True)  # the relay's backoff passes at once
    transport = ConfirmsThenCrashes(clock)
    bus = make_bus(sql_db, transport, clock)
    effects: list[str] = []

    @bus.subscribe(CoursePublished, group="search")
    async def index(event: CoursePublished) -> None:
        effects.append(event.title)

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        async with sql_db.transaction() as tx:
            sent = await bus.publish(course("once"), outbox=tx)
        await recorder.wait_for(lambda o: len(o) == 2)
        assert [m.id for m in transport.published] == [sent.id, sent.id]  # at least once
        assert sorted(o.result for o in recorder.outcomes) == ["duplicate", "handled"]
        assert effects == ["once"]  # effect exactly once
        assert await bus.flush() == 0
        assert await pending(sql_db) == 0
    finally:
        await bus.stop()


async def test_the_outbox_takes_only_a_unit_of_work(sql_db: Database) -> None:
    clock = ManualClock()
    bus = make_bus(sql_db, MemoryTransport(clock), clock)
    with pytest.raises(TypeError, match="AsyncSession"):
        await bus.publish(course("x"), outbox="not a transaction")


async def test_stop_publishes_what_is_pending(sql_db: Database) -> None:
    clock = ManualClock()
    transport = MemoryTransport(clock)
    bus = make_bus(sql_db, transport, clock)
    await bus.start()
    while clock.sleepers == 0:  # the relay did its first flush and sleeps until a sweep
        await asyncio.sleep(0)
    # rows written by another process (no commit hook here), found by the last flush
    other = make_bus(same_database(sql_db), MemoryTransport(clock), clock)
    try:
        async with sql_db.transaction() as tx:
            await other.publish(course("late"), outbox=tx)
    finally:
        await other.stop()
    assert await pending(sql_db) == 1
    await bus.stop()
    assert [m.type for m in transport.published] == [CoursePublished.event_type()]
    assert await pending(sql_db) == 0


@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_relays_of_two_instances_share_the_rows_without_duplicates(
    sql_db: Database,
) -> None:
    # PostgreSQL only: FOR UPDATE SKIP LOCKED; on SQLite two processes' relays
    # may both publish a row (the inbox absorbs it)
    clock = ManualClock()
    writer = make_bus(sql_db, MemoryTransport(clock), clock)
    for start in range(0, 200, 50):
        async with sql_db.transaction() as tx:
            await writer.publish([course(str(n)) for n in range(start, start + 50)], outbox=tx)
    a, b = MemoryTransport(clock), MemoryTransport(clock)
    await a.start()
    await b.start()
    second_db = same_database(sql_db)
    try:
        outbox_a, outbox_b = SqlOutbox(sql_db), SqlOutbox(second_db)
        while await pending(sql_db):
            await asyncio.gather(
                outbox_a.relay(a.publish, limit=20), outbox_b.relay(b.publish, limit=20)
            )
        ids = [m.id for m in a.published] + [m.id for m in b.published]
        assert len(ids) == 200 == len(set(ids))
        assert a.published
        assert b.published
    finally:
        await a.stop()
        await b.stop()
        await second_db.stop()


async def test_a_held_relay_connection_survives_a_failed_publish_and_goes_back_clean(
    sql_db: Database, backend: str
) -> None:
    clock = ManualClock()
    writer = make_bus(sql_db, MemoryTransport(clock), clock)
    async with sql_db.transaction() as tx:
        await writer.publish([course("a"), course("b")], outbox=tx)
    outbox = SqlOutbox(sql_db)
    broker = MemoryTransport(clock)
    await broker.start()
    try:
        async with outbox.hold():
            broker.reachable = False
            with pytest.raises(PublishFailed):
                await outbox.relay(broker.publish, limit=10)
            assert await pending(sql_db) == 2  # rolled back: the rows stay
            broker.reachable = True
            assert await outbox.relay(broker.publish, limit=10) == 2  # on a new connection
            assert await outbox.relay(broker.publish, limit=10) == 0
        assert [m.type for m in broker.published] == [CoursePublished.event_type()] * 2
        assert await pending(sql_db) == 0
        if backend == "postgresql":  # the pool got it back with durable commits
            async with contextlib.AsyncExitStack() as stack:
                size = sql_db.config.pool_size  # every pooled connection, the held one too
                conns = [
                    await stack.enter_async_context(sql_db.engine.connect()) for _ in range(size)
                ]
                settings = [await c.scalar(text("SHOW synchronous_commit")) for c in conns]
            assert settings == ["on"] * size
    finally:
        await broker.stop()


async def test_the_outbox_can_be_given_to_the_constructor(sql_db: Database) -> None:
    clock = ManualClock()
    transport = MemoryTransport(clock)
    bus = EventBus(
        transport,
        source="/courses",
        group="courses",
        clock=clock,
        relay_sweep=HOUR,
        outbox=SqlOutbox(sql_db, clock=clock),
    )
    bus.publishes(CoursePublished)
    assert bus.outbox is not None
    assert bus.relay is not None
    await bus.start()
    try:
        async with sql_db.transaction() as tx:
            sent = await bus.publish(course("Go"), outbox=tx)
        for _ in range(500):
            if transport.published:
                break
            await asyncio.sleep(0.01)
        [message] = transport.published
        assert message.attributes["id"] == sent.id
    finally:
        await bus.stop()


async def test_the_relay_naps_until_a_commit_its_linger_or_a_sweep(sql_db: Database) -> None:
    clock = ManualClock()
    transport = MemoryTransport(clock)
    bus = make_bus(sql_db, transport, clock)
    relay = bus.relay
    assert relay is not None
    flushes: list[float] = []
    real_relay = relay.store.relay

    async def counted(publish: Any, *, limit: int) -> int:
        flushes.append(clock.monotonic())
        return await real_relay(publish, limit=limit)

    relay.store.relay = counted  # type: ignore[method-assign]

    async def napping() -> None:
        deadline = time.monotonic() + 10  # real time: the flushes wait on the database
        while time.monotonic() < deadline:
            if clock.sleepers == 1 and relay._waiter is not None:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("the relay never went back to its nap")

    await bus.start()
    try:
        await napping()  # the start's flush, then the linger (connection held)
        assert flushes == [0]
        await clock.advance(relay.linger)  # the linger ran out: release, nap till the sweep
        await napping()
        assert flushes == [0]  # the timer woke no flush
        async with sql_db.transaction() as tx:
            sent = await bus.publish(course("Go"), outbox=tx)
        deadline = time.monotonic() + 10
        while not transport.published and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        assert [m.id for m in transport.published] == [sent.id]  # woken by the commit
        await napping()  # the commit's flush ran, and the relay lingers again
        assert flushes == [0, relay.linger]  # at once: the clock did not move
        await clock.advance(relay.linger)
        await napping()
        assert len(flushes) == 2
        await clock.advance(HOUR)  # the sweep's time
        await napping()
        assert len(flushes) == 3  # the sweep ran
    finally:
        await asyncio.wait_for(bus.stop(), 5)  # a stop ends a nap
    assert not relay.running


async def test_a_commit_is_published_from_memory_once_the_table_was_read(
    sql_db: Database,
) -> None:
    clock = ManualClock()
    bus = make_bus(sql_db, MemoryTransport(clock), clock)  # never started: relay() by hand
    outbox = bus.outbox
    assert isinstance(outbox, SqlOutbox)
    broker = MemoryTransport(clock)
    await broker.start()
    try:
        async with sql_db.transaction() as tx:
            first = await bus.publish(course("a"), outbox=tx)
        assert await outbox.relay(broker.publish, limit=10) == 1  # the first read of the table
        async with sql_db.transaction() as tx:
            second = await bus.publish(course("b"), outbox=tx)
        async with sql_db.transaction() as tx:  # its row spoiled: a read would drop it
            await tx.execute(text("UPDATE lms_event_outbox SET attributes = '[]'"))
        assert await outbox.relay(broker.publish, limit=10) == 1
        assert [m.id for m in broker.published] == [first.id, second.id]
        assert broker.published[1].attributes["type"] == CoursePublished.event_type()
        assert await outbox.relay(broker.publish, limit=10) == 0  # nothing new: no read
        outbox.rescan()
        assert await outbox.relay(broker.publish, limit=10) == 0  # deleted once confirmed
        assert await pending(sql_db) == 0
    finally:
        await broker.stop()


async def test_rows_of_a_rolled_back_savepoint_are_never_published(sql_db: Database) -> None:
    clock = ManualClock()
    transport = MemoryTransport(clock)
    bus = make_bus(sql_db, transport, clock)
    await bus.start()
    try:
        while clock.sleepers == 0:  # the relay read the table at start: memory serves next
            await asyncio.sleep(0)
        async with sql_db.transaction() as tx:
            kept = await bus.publish(course("kept"), outbox=tx)
            savepoint = await tx.begin_nested()
            await bus.publish(course("undone"), outbox=tx)
            await savepoint.rollback()
            after = await bus.publish(course("after"), outbox=tx)
        # the commit woke the relay: it reads the table
        assert await published(transport, 2) == [kept.id, after.id]
        assert await bus.flush() == 0
        assert [m.id for m in transport.published] == [kept.id, after.id]
        assert await pending(sql_db) == 0
    finally:
        await bus.stop()


async def test_after_a_failed_publish_the_rows_go_out_in_commit_order_once(
    sql_db: Database,
) -> None:
    clock = ManualClock(auto_advance=True)  # the relay's backoff passes at once
    transport = MemoryTransport(clock)
    bus = make_bus(sql_db, transport, clock)
    relay = bus.relay
    assert relay is not None
    await bus.start()
    try:
        transport.reachable = False
        sent = []
        async with sql_db.transaction() as tx:
            sent.append(await bus.publish(course("a"), outbox=tx))
        deadline = time.monotonic() + 10
        while not relay.failures and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        assert relay.failures
        for title in ("b", "c"):
            async with sql_db.transaction() as tx:
                sent.append(await bus.publish(course(title), outbox=tx))
        transport.reachable = True
        assert await published(transport, 3) == [e.id for e in sent]
        assert await bus.flush() == 0
        assert [m.id for m in transport.published] == [e.id for e in sent]  # once
        assert await pending(sql_db) == 0
    finally:
        await bus.stop()


async def test_rows_of_another_process_are_published_at_the_sweep(sql_db: Database) -> None:
    clock = ManualClock()
    transport = MemoryTransport(clock)
    bus = make_bus(sql_db, transport, clock)
    relay = bus.relay
    assert relay is not None
    await bus.start()
    other_db = same_database(sql_db)
    other = make_bus(other_db, MemoryTransport(clock), clock)  # its relay never runs
    try:
        async with sql_db.transaction() as tx:
            mine = await bus.publish(course("mine"), outbox=tx)
        async with other_db.transaction() as tx:
            theirs = await other.publish(course("theirs"), outbox=tx)
        deadline = time.monotonic() + 10

        async def napping() -> None:
            while not (clock.sleepers == 1 and relay._waiter is not None):
                assert time.monotonic() < deadline, "the relay never went back to its nap"
                await asyncio.sleep(0.001)

        assert await published(transport, 1) == [mine.id]
        await napping()
        assert [m.id for m in transport.published] == [mine.id]  # memory knows only its own
        await clock.advance(relay.linger)
        await napping()
        await clock.advance(HOUR)  # the sweep reads the table
        assert await published(transport, 2) == [mine.id, theirs.id]
    finally:
        await bus.stop()
        await other_db.stop()


async def test_commits_beyond_what_memory_keeps_are_read_from_the_table(
    sql_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lms_shared.events.sql.MAX_FRESH", 2)
    clock = ManualClock()
    bus = make_bus(sql_db, MemoryTransport(clock), clock)  # never started: no relay runs
    outbox = bus.outbox
    assert isinstance(outbox, SqlOutbox)
    broker = MemoryTransport(clock)
    await broker.start()
    try:
        assert await outbox.relay(broker.publish, limit=10) == 0  # read: the table is empty
        sent = []
        for title in ("a", "b", "c"):
            async with sql_db.transaction() as tx:
                sent.append(await bus.publish(course(title), outbox=tx))
        async with sql_db.transaction() as tx:  # another process took the first one
            await tx.execute(text(f"DELETE FROM lms_event_outbox WHERE event_id = '{sent[0].id}'"))
        assert await outbox.relay(broker.publish, limit=1) == 1  # from the table, in order
        assert await outbox.relay(broker.publish, limit=1) == 1
        assert await outbox.relay(broker.publish, limit=1) == 0
        assert [m.id for m in broker.published] == [e.id for e in sent[1:]]  # memory gave up
        assert await pending(sql_db) == 0
    finally:
        await broker.stop()


async def test_commits_of_plain_connections_wake_the_relay_once_committed(
    sql_db: Database,
) -> None:
    # a connection's "commit" event fires before the commit: a relay woken then
    # read the table too early, and every row after the first of a pooled
    # connection waited for the sweep (which this clock never brings)
    clock = ManualClock()
    transport = MemoryTransport(clock)
    bus = make_bus(sql_db, transport, clock)
    await bus.start()
    try:
        while clock.sleepers == 0:
            await asyncio.sleep(0)
        sent = []
        for n in range(20):
            async with sql_db.engine.begin() as conn:
                sent.append(await bus.publish(course(str(n)), outbox=conn))
        assert await published(transport, len(sent)) == [e.id for e in sent]
        assert clock.monotonic() == 0  # woken by the commits alone
    finally:
        await bus.stop()


async def test_a_released_savepoint_publishes_nothing_before_the_outer_commit(
    sql_db: Database,
) -> None:
    # SQLAlchemy calls after_commit for a released savepoint too
    clock = ManualClock()
    transport = MemoryTransport(clock)
    bus = make_bus(sql_db, transport, clock)
    await bus.start()
    try:
        while clock.sleepers == 0:  # the start's table read is done: memory serves next
            await asyncio.sleep(0)

        async def change(fail: bool) -> list[str]:
            async with sql_db.transaction() as tx:
                first = await bus.publish(course("before"), outbox=tx)
                savepoint = await tx.begin_nested()
                second = await bus.publish(course("inside"), outbox=tx)
                await savepoint.commit()
                for _ in range(50):
                    await asyncio.sleep(0)
                assert transport.published == []  # the outer transaction goes on
                if fail:
                    raise RuntimeError("the outer change failed")
            return [first.id, second.id]

        with pytest.raises(RuntimeError, match="outer"):
            await change(fail=True)
        assert await bus.flush() == 0
        assert transport.published == []
        sent = await change(fail=False)
        assert await published(transport, 2) == sent
        assert await bus.flush() == 0
        assert await pending(sql_db) == 0
    finally:
        await bus.stop()
