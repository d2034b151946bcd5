"""The inbox on SQLite and PostgreSQL: a handler's database effect happens once per group.

The handlers write an "effect" row; duplicates (redelivered, republished,
racing) must leave exactly one, and a failing handler none.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from lms_shared.db import Database
from lms_shared.events import DuplicateDelivery, EventBus, MemoryInbox, MemoryTransport, to_message
from lms_shared.events.sql import SqlInbox
from lms_shared.testing import ManualClock
from lms_shared.testing._events import EventRecorder

from ._bus_models import CoursePublished
from ._sql_support import backend, sql_db, sql_schema, sql_url

__all__ = ["backend", "sql_db", "sql_schema", "sql_url"]  # fixtures used by name

EFFECTS = Table(
    "test_effects",
    MetaData(),
    Column("n", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("consumer_group", String(64), nullable=False),
)


@pytest.fixture
async def db(sql_db: Database) -> Database:
    async with sql_db.engine.begin() as conn:
        await conn.run_sync(EFFECTS.metadata.create_all)
    return sql_db


async def effects(db: Database, event_id: str | None = None) -> int:
    statement = select(func.count()).select_from(EFFECTS)
    if event_id is not None:
        statement = statement.where(EFFECTS.c.event_id == event_id)
    async with db.engine.connect() as conn:
        return int(await conn.scalar(statement) or 0)


def make_bus(db: Database, clock: ManualClock) -> EventBus:
    bus = EventBus(MemoryTransport(clock), source="/tests", group="grading", clock=clock)
    bus.use_database(db)
    bus.random = lambda: 0.5
    bus.publishes(CoursePublished)
    return bus


def course() -> CoursePublished:
    return CoursePublished(course_id=uuid.uuid4(), title="Rust")


async def test_a_redelivered_event_changes_the_database_once(db: Database) -> None:
    clock = ManualClock()
    bus = make_bus(db, clock)

    @bus.subscribe(CoursePublished)
    async def record(event: CoursePublished, tx: AsyncSession) -> None:
        context_id = str(event.course_id)
        await tx.execute(insert(EFFECTS).values(event_id=context_id, consumer_group="grading"))

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        sent = await bus.publish(course())
        await recorder.settled(sent.id)
        again = to_message(sent)
        await bus.transport.publish([again])
        await recorder.wait_for(lambda o: len(o) == 2)
        assert [o.result for o in recorder.outcomes] == ["handled", "duplicate"]
        assert await effects(db) == 1
        inbox = bus.inbox
        assert isinstance(inbox, SqlInbox)
        assert await inbox.was_handled("grading", sent.id)
        assert not await inbox.was_handled("other", sent.id)
    finally:
        await bus.stop()


async def test_a_failing_handler_leaves_neither_effect_nor_record_and_the_retry_counts(
    db: Database,
) -> None:
    clock = ManualClock()
    bus = make_bus(db, clock)
    fail = [True]

    @bus.subscribe(CoursePublished)
    async def record(event: CoursePublished, tx: AsyncSession) -> None:
        await tx.execute(insert(EFFECTS).values(event_id="x", consumer_group="grading"))
        if fail[0]:
            fail[0] = False
            raise RuntimeError("after the write: it must be rolled back")

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        sent = await bus.publish(course())
        [retry] = await recorder.wait_for(lambda o: len(o) == 1)
        assert retry.result == "retry"
        assert await effects(db) == 0
        inbox = bus.inbox
        assert isinstance(inbox, SqlInbox)
        assert not await inbox.was_handled("grading", sent.id)
        await clock.advance(retry.delay or 0)
        await recorder.settled(sent.id)
        assert await effects(db) == 1
    finally:
        await bus.stop()


async def test_a_handler_using_service_db_joins_the_inbox_transaction(db: Database) -> None:
    clock = ManualClock()
    bus = make_bus(db, clock)

    @bus.subscribe(CoursePublished)
    async def record(event: CoursePublished) -> None:
        async with db.transaction() as tx:  # the inbox's unit of work, as a savepoint
            await tx.execute(insert(EFFECTS).values(event_id="joined", consumer_group="g"))

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        sent = await bus.publish(course())
        await recorder.settled(sent.id)
        await bus.transport.publish([to_message(sent)])
        await recorder.wait_for(lambda o: len(o) == 2)
        assert await effects(db, "joined") == 1
    finally:
        await bus.stop()


async def test_racing_duplicates_commit_one_effect(db: Database, backend: str) -> None:
    # on PostgreSQL both deliveries pass the "seen?" check and write; the
    # second's inbox record conflicts, so its whole unit of work (its effect
    # too) is undone. SQLite runs write units one at a time (BEGIN
    # IMMEDIATE): the second finds the record at once.
    inbox = SqlInbox(db)
    event_id = uuid.uuid4().hex
    both_inside = asyncio.Barrier(2) if backend == "postgresql" else None

    async def handle() -> str:
        try:
            async with inbox.process("grading", event_id) as entry:
                if entry.duplicate:
                    return "seen"
                if both_inside is not None:
                    await both_inside.wait()
                await entry.tx.execute(
                    insert(EFFECTS).values(event_id=event_id, consumer_group="grading")
                )
        except DuplicateDelivery:
            return "duplicate"
        return "handled"

    results = await asyncio.wait_for(asyncio.gather(handle(), handle()), 30)
    expected = "duplicate" if backend == "postgresql" else "seen"
    assert sorted(results) == sorted(["handled", expected])
    assert await effects(db, event_id) == 1


async def test_old_records_are_purged(db: Database) -> None:
    clock = ManualClock()
    inbox = SqlInbox(db, clock=clock)
    async with inbox.process("g", "old") as entry:
        assert not entry.duplicate
    await clock.advance(timedelta(days=8).total_seconds())
    async with inbox.process("g", "new"):
        pass
    assert await inbox.purge(clock.now() - timedelta(days=7)) == 1
    assert not await inbox.was_handled("g", "old")
    assert await inbox.was_handled("g", "new")
    async with inbox.process("g", "new") as entry:
        assert entry.duplicate


async def test_the_memory_inbox_follows_the_same_rules() -> None:
    inbox = MemoryInbox(max_entries=2)
    async with inbox.process("g", "a") as entry:
        assert not entry.duplicate
        assert entry.tx is None
    async with inbox.process("g", "a") as entry:
        assert entry.duplicate
    with pytest.raises(RuntimeError):
        async with inbox.process("g", "b"):
            raise RuntimeError("handler failed")
    assert not inbox.handled("g", "b")
    with pytest.raises(DuplicateDelivery):
        async with inbox.process("g", "c"), inbox.process("g", "c"):
            pass  # a racing delivery records it first
    for key in ("d", "e"):
        async with inbox.process("g", key):
            pass
    assert len(inbox) == 2
    assert not inbox.handled("g", "a")
