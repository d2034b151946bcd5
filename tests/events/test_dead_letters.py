"""Dead letters: one store contract (memory, SQLite, PostgreSQL) and replay.

Replay puts a letter back for its own group only (the other groups ack it
unseen), at a bounded rate on the injected clock, removes it once the
broker confirmed it, and never replays a letter that died during the
replay itself.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from lms_shared.db import Database
from lms_shared.events import (
    DeadLetter,
    DeadLetterQuery,
    DeadLetterStore,
    DeadLetterStoreUnavailable,
    EventBus,
    MemoryDeadLetterStore,
    MemoryTransport,
    Message,
    Outcome,
    replay_dead_letters,
)
from lms_shared.events.sql import SqlDeadLetterStore
from lms_shared.redaction import Redactor
from lms_shared.testing import ManualClock
from lms_shared.testing._events import EventRecorder, memory_bus

from ._bus_models import CoursePublished
from ._sql_support import BACKENDS, sql_db, sql_schema, sql_url

__all__ = ["sql_db", "sql_schema", "sql_url"]  # fixtures used by name

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", *BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest) -> DeadLetterStore:
    if backend == "memory":
        return MemoryDeadLetterStore()
    database: Database = request.getfixturevalue("sql_db")
    return SqlDeadLetterStore(database)


def raw(type: str = "lms.test.thing", data: bytes = b'{"n": 1}', **extra: str) -> Message:
    return Message(
        {
            "id": uuid.uuid4().hex,
            "source": "/tests",
            "specversion": "1.0",
            "type": type,
            "datacontenttype": "application/json",
            "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
            **extra,
        },
        data,
    )


def letter(
    *,
    type: str = "lms.test.thing",
    group: str = "search",
    reason: str = "handler-failed",
    at: datetime = T0,
    data: bytes = b'{"n": 1}',
) -> DeadLetter:
    return DeadLetter.create(
        raw(type, data),
        group=group,
        handler="tests.handler",
        reason=reason,
        error="RuntimeError: boom",
        attempts=5,
        now=at,
        redactor=Redactor(),
    )


async def test_the_store_keeps_letters_whole_and_filters_them(store: DeadLetterStore) -> None:
    binary = letter(data=b"\x00\xff not json at all")
    a = letter(type="lms.test.a", group="search", at=T0)
    b = letter(type="lms.test.b", group="mail", at=T0 + timedelta(minutes=1), reason="expired")
    c = letter(type="lms.test.a", group="mail", at=T0 + timedelta(minutes=2))
    for item in (binary, a, b, c):
        await store.add(item)

    got = await store.get(binary.id)
    assert got == binary  # attributes, data bytes, error, trace id, time: all of it
    assert got is not None
    assert got.message.data == b"\x00\xff not json at all"
    assert got.trace_id == "1" * 32
    assert await store.get("missing") is None

    # oldest first; letters that died at the same moment by their id
    assert [x.id for x in await store.list()] == [*sorted([binary.id, a.id]), b.id, c.id]
    assert {x.id for x in await store.list(DeadLetterQuery(type="lms.test.a"))} == {a.id, c.id}
    assert [x.id for x in await store.list(DeadLetterQuery(group="mail"))] == [b.id, c.id]
    assert [x.id for x in await store.list(DeadLetterQuery(reason="expired"))] == [b.id]
    window = DeadLetterQuery(since=T0 + timedelta(seconds=30), until=T0 + timedelta(minutes=2))
    assert [x.id for x in await store.list(window)] == [b.id]
    assert [x.id for x in await store.list(DeadLetterQuery(ids=(c.id, "nope")))] == [c.id]
    assert len(await store.list(limit=2)) == 2
    assert [x.id for x in await store.list(limit=2, offset=3)] == [c.id]
    assert await store.count() == 4
    assert await store.count(DeadLetterQuery(group="mail", type="lms.test.a")) == 1

    assert await store.delete([a.id, a.id, "nope"]) == 1
    assert await store.purge(DeadLetterQuery(group="mail")) == 2
    assert [x.id for x in await store.list()] == [binary.id]
    with pytest.raises(ValueError, match="limit"):
        await store.list(limit=0)


def test_queries_refuse_naive_or_empty_windows() -> None:
    with pytest.raises(ValueError, match="timezone"):
        DeadLetterQuery(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="before"):
        DeadLetterQuery(since=T0, until=T0)
    assert DeadLetterQuery().is_everything
    assert not DeadLetterQuery(type="x").is_everything


async def test_a_full_memory_store_refuses_rather_than_drops() -> None:
    store = MemoryDeadLetterStore(max_letters=1)
    await store.add(letter())
    with pytest.raises(DeadLetterStoreUnavailable):
        await store.add(letter())


@pytest.mark.parametrize(
    "url",
    ["postgresql+asyncpg://nobody@127.0.0.1:1/none", "sqlite+aiosqlite:///{tmp}/no-tables.db"],
    ids=["postgresql-down", "sqlite-without-the-table"],
)
async def test_a_failing_sql_store_is_a_typed_error(url: str, tmp_path: Path) -> None:
    broken = create_async_engine(url.format(tmp=tmp_path))
    try:
        with pytest.raises(DeadLetterStoreUnavailable):
            await SqlDeadLetterStore(broken).add(letter())
        with pytest.raises(DeadLetterStoreUnavailable):
            await SqlDeadLetterStore(broken).list()
    finally:
        await broken.dispose()


# -- replay -----------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0, auto_advance=True)


def finished(event_id: str, outcomes: list[Outcome]) -> bool:
    """mail handled it once, then skipped the replay; search handled the replay."""
    done = ("handled", "skipped")
    return sum(1 for o in outcomes if o.event_id == event_id and o.result in done) >= 3


def fixable_bus(clock: ManualClock) -> tuple[EventBus, dict[str, bool], list[str]]:
    bus = memory_bus(clock=clock)
    bus.publishes(CoursePublished)
    state = {"broken": True}
    handled: list[str] = []

    @bus.subscribe(CoursePublished, group="search", max_attempts=1)
    async def index(event: CoursePublished) -> None:
        if state["broken"]:
            raise RuntimeError("bug")
        handled.append(event.title)

    @bus.subscribe(CoursePublished, group="mail")
    async def mail(event: CoursePublished) -> None:
        handled.append("mail:" + event.title)

    return bus, state, handled


async def test_replay_after_the_fix_reaches_only_the_group_that_failed(
    clock: ManualClock,
) -> None:
    bus, state, handled = fixable_bus(clock)
    recorder = EventRecorder(bus)
    await bus.start()
    try:
        sent = [await bus.publish(CoursePublished(course_id=uuid.uuid4(), title=t)) for t in "abc"]
        for event in sent:
            await recorder.settled(event.id, groups=2)
        assert sorted(handled) == ["mail:a", "mail:b", "mail:c"]
        assert await bus.dead_letters.count(DeadLetterQuery(group="search")) == 3

        dry = await bus.replay(DeadLetterQuery(group="search"), dry_run=True)
        assert dry.dry_run
        assert dry.count == 3
        assert await bus.dead_letters.count() == 3
        assert isinstance(bus.transport, MemoryTransport)
        assert len(bus.transport.published) == 3  # a dry run publishes nothing

        state["broken"] = False
        slept_before = len(clock.slept)
        report = await bus.replay(DeadLetterQuery(group="search"), rate=4.0, limit=2)
        assert report.count == 2
        assert report.error is None
        pauses = [s for s in clock.slept[slept_before:] if s == 0.25]
        assert len(pauses) == 1  # one pause between two publishes, 1/rate seconds
        for letter_ in report.letters:
            await recorder.wait_for(partial(finished, letter_.event_id))
        assert sorted(handled) == ["a", "b", "mail:a", "mail:b", "mail:c"]  # mail saw no replay
        assert await bus.dead_letters.count() == 1
        skipped = [o for o in recorder.outcomes if o.result == "skipped"]
        assert {o.group for o in skipped} == {"mail"}
    finally:
        await bus.stop()


async def test_a_letter_that_fails_again_during_replay_is_not_replayed_twice(
    clock: ManualClock,
) -> None:
    bus, _, _ = fixable_bus(clock)
    recorder = EventRecorder(bus)
    await bus.start()
    try:
        sent = await bus.publish(CoursePublished(course_id=uuid.uuid4(), title="x"))
        await recorder.settled(sent.id, groups=2)
        report = await bus.replay(DeadLetterQuery(group="search"))
        assert report.count == 1
        await recorder.wait_for(lambda o: sum(1 for x in o if x.result == "dead") == 2)
        [again] = await bus.dead_letters.list()
        assert again.event_id == sent.id
        assert again.id != report.letters[0].id
    finally:
        await bus.stop()


async def test_replay_stops_when_the_broker_refuses_and_keeps_the_rest(
    clock: ManualClock,
) -> None:
    store = MemoryDeadLetterStore()
    for minute in range(3):
        await store.add(letter(at=T0 - timedelta(minutes=3 - minute)))
    transport = MemoryTransport(clock)
    report = await replay_dead_letters(store, transport, clock=clock)  # not started
    assert report.count == 0
    assert report.error is not None
    assert await store.count() == 3
    await transport.start()
    try:
        report = await replay_dead_letters(store, transport, clock=clock, limit=1)
        assert report.count == 1
        assert await store.count() == 2
        replayed = transport.published[0]
        assert replayed.attributes["replaygroup"] == "search"
        with pytest.raises(ValueError, match="rate"):
            await replay_dead_letters(store, transport, clock=clock, rate=0)
    finally:
        await transport.stop()
