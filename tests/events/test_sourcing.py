"""Event sourcing: aggregates, the store, snapshots and projections (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field
from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lms_shared.db import Database
from lms_shared.errors import Conflict
from lms_shared.events import Event, EventBus, EventRegistry, MemoryTransport
from lms_shared.events.sourcing import (
    Aggregate,
    AggregateRepository,
    EventStore,
    Projection,
    ProjectionRunner,
    StreamVersionConflict,
    applies,
    create_sourcing_tables,
)
from lms_shared.testing import ManualClock
from lms_shared.testing._events import EventRecorder

from ._sql_support import backend, sql_db, sql_schema, sql_url

__all__ = ["backend", "sql_db", "sql_schema", "sql_url"]  # fixtures used by name


class GradebookOpened(Event, type="lms.test.gradebook.opened"):
    """A gradebook for one enrollment."""

    enrollment_id: uuid.UUID


class GradeRecorded(Event, type="lms.test.gradebook.graded", version=2):
    """A grade (v2: ``max_score``; v1 had percent only)."""

    assignment: str
    score: float
    max_score: float


class GradebookState(BaseModel):
    open: bool = False
    grades: dict[str, float] = Field(default_factory=dict)


class Gradebook(Aggregate[GradebookState]):
    state_model = GradebookState

    def open(self, enrollment_id: uuid.UUID) -> None:
        if self.state.open:
            raise Conflict("the gradebook is already open")
        self.record_event(GradebookOpened(enrollment_id=enrollment_id))

    def grade(self, assignment: str, score: float, max_score: float = 100.0) -> None:
        if not self.state.open:
            raise Conflict("the gradebook is not open")
        self.record_event(GradeRecorded(assignment=assignment, score=score, max_score=max_score))

    @applies(GradebookOpened)
    def _opened(self, event: GradebookOpened) -> None:
        self.state.open = True

    @applies(GradeRecorded)
    def _graded(self, event: GradeRecorded) -> None:
        self.state.grades[event.assignment] = round(100 * event.score / event.max_score, 1)


def registry() -> EventRegistry:
    found = EventRegistry()
    found.register(GradebookOpened)
    found.register(GradeRecorded)

    @found.upcaster("lms.test.gradebook.graded", 1)
    def percent_to_score(data: dict[str, Any]) -> dict[str, Any]:
        return {"assignment": data["assignment"], "score": data["percent"], "max_score": 100.0}

    return found


@pytest.fixture
async def store(sql_db: Database) -> EventStore:
    await create_sourcing_tables(sql_db)
    return EventStore(sql_db, registry=registry(), clock=ManualClock())


async def test_an_aggregate_is_the_fold_of_its_events(store: EventStore) -> None:
    books = AggregateRepository(store, Gradebook, snapshot_every=None)
    book = await books.get("e1")
    assert (book.version, book.state.open) == (0, False)
    book.open(uuid.uuid4())
    book.grade("lab 1", 45, 50)
    assert await books.save(book) == 2
    assert book.pending == ()
    again = await books.get("e1")
    assert again.version == 2
    assert again.state == GradebookState(open=True, grades={"lab 1": 90.0})
    [first, second] = await store.read("gradebook-e1")
    assert (first.version, second.version) == (1, 2)
    assert second.position > first.position
    assert isinstance(second.event, GradeRecorded)


async def test_a_stale_writer_gets_a_typed_conflict_and_nothing_is_written(
    store: EventStore,
) -> None:
    books = AggregateRepository(store, Gradebook, snapshot_every=None)
    book = await books.get("e2")
    book.open(uuid.uuid4())
    await books.save(book)
    ada, bo = await books.get("e2"), await books.get("e2")
    ada.grade("lab 1", 10)
    bo.grade("lab 1", 99)
    await books.save(ada)
    with pytest.raises(StreamVersionConflict) as caught:
        await books.save(bo)
    assert caught.value.status == 409
    assert caught.value.code.slug == "stream-version-conflict"
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert (await books.get("e2")).state.grades == {"lab 1": 10.0}
    with pytest.raises(StreamVersionConflict):  # a new stream is expected at 0
        await store.append(
            "gradebook-e2", [GradebookOpened(enrollment_id=uuid.uuid4())], expected_version=0
        )


async def test_concurrent_appends_of_one_version_let_exactly_one_win(store: EventStore) -> None:
    async def write(n: int) -> int | None:
        try:
            return await store.append(
                "gradebook-race",
                [GradeRecorded(assignment=f"a{n}", score=n, max_score=10)],
                expected_version=0,
            )
        except StreamVersionConflict:
            return None

    results = await asyncio.gather(*(write(n) for n in range(6)))
    assert sorted(r for r in results if r is not None) == [1]
    assert len(await store.read("gradebook-race")) == 1


async def test_snapshots_are_taken_and_loading_starts_from_them(store: EventStore) -> None:
    books = AggregateRepository(store, Gradebook, snapshot_every=3)
    book = await books.get("e3")
    book.open(uuid.uuid4())
    await books.save(book)
    assert await store.snapshot("gradebook-e3") is None
    for n in range(4):
        book.grade(f"lab {n}", n, 4)
        await books.save(book)
    assert book.version == 5
    version, state = await store.snapshot("gradebook-e3") or (0, {})
    assert version == 3  # crossed 3 at the second save; 6 not reached yet
    assert state["grades"] == {"lab 0": 0.0, "lab 1": 25.0}
    # the snapshot is used: events before it are never read again
    async with store.database.transaction() as tx:
        await tx.execute(
            delete(store.store).where(
                store.store.c.stream == "gradebook-e3", store.store.c.version <= 3
            )
        )
    loaded = await books.get("e3")
    assert loaded.version == 5
    assert loaded.state == book.state


async def test_older_event_versions_are_lifted_when_read(store: EventStore) -> None:
    clock = ManualClock()
    old = EventStore(store.database, registry=EventRegistry(), clock=clock)

    class GradeRecordedV1(Event, type="lms.test.gradebook.graded", version=1):
        assignment: str
        percent: float

    await old.append(
        "gradebook-e4", [GradebookOpened(enrollment_id=uuid.uuid4())], expected_version=0
    )
    await old.append(
        "gradebook-e4", [GradeRecordedV1(assignment="quiz", percent=70)], expected_version=1
    )
    book = await AggregateRepository(store, Gradebook, snapshot_every=None).get("e4")
    assert book.state.grades == {"quiz": 70.0}


class Averages(Projection):
    name: ClassVar[str] = "averages"
    table = Table(
        "test_averages",
        MetaData(),
        Column("assignment", String(50), primary_key=True),
        Column("count", Integer, nullable=False),
        Column("total", Integer, nullable=False),
    )

    @applies(GradeRecorded)
    async def _graded(self, event: GradeRecorded, tx: AsyncSession) -> None:
        row = (
            await tx.execute(select(self.table).where(self.table.c.assignment == event.assignment))
        ).first()
        if row is None:
            values = {"assignment": event.assignment, "count": 1, "total": int(event.score)}
            await tx.execute(insert(self.table).values(values))
        else:
            await tx.execute(
                update(self.table)
                .where(self.table.c.assignment == event.assignment)
                .values(count=row.count + 1, total=row.total + int(event.score))
            )

    async def reset(self, tx: AsyncSession) -> None:
        await tx.execute(delete(self.table))

    async def rows(self, db: Database) -> dict[str, tuple[int, int]]:
        async with db.transaction() as tx:
            found = (await tx.execute(select(self.table))).all()
        return {r.assignment: (r.count, r.total) for r in found}


async def test_a_projection_catches_up_once_and_rebuilds_from_the_start(
    store: EventStore,
) -> None:
    averages = Averages()
    async with store.database.engine.begin() as conn:
        await conn.run_sync(lambda sync: Averages.table.create(sync, checkfirst=True))
    books = AggregateRepository(store, Gradebook, snapshot_every=None)
    for n, enrollment in enumerate(("a", "b", "c")):
        book = await books.get(enrollment)
        book.open(uuid.uuid4())
        book.grade("lab", 10 * (n + 1))
        await books.save(book)
    runner = ProjectionRunner(store, averages, batch=2)  # several batches
    assert await runner.catch_up() == 3  # the opened events are not its types
    assert await averages.rows(store.database) == {"lab": (3, 60)}
    assert await runner.catch_up() == 0  # each event once
    late = await books.get("a")
    late.grade("quiz", 5)
    await books.save(late)
    assert await runner.catch_up() == 1
    assert await averages.rows(store.database) == {"lab": (3, 60), "quiz": (1, 5)}
    async with store.database.transaction() as tx:  # a bug corrupted the read model
        await tx.execute(update(Averages.table).values(total=0))
    assert await runner.rebuild() == 4
    assert await averages.rows(store.database) == {"lab": (3, 60), "quiz": (1, 5)}
    assert await runner.position() == (await store.read_all())[-1].position


async def test_saved_events_are_published_through_the_outbox_in_the_same_transaction(
    store: EventStore,
) -> None:
    from lms_shared.events.sql import create_event_tables

    await create_event_tables(store.database)
    clock = ManualClock()
    bus = EventBus(MemoryTransport(clock), source="/grading", clock=clock, relay_sweep=3600)
    bus.use_database(store.database, inbox=False)
    bus.publishes(GradebookOpened, GradeRecorded)
    recorder = EventRecorder(bus)
    books = AggregateRepository(store, Gradebook, snapshot_every=None, bus=bus)
    await bus.start()
    try:
        book = await books.get("e5")
        book.open(uuid.uuid4())
        book.grade("lab", 1, 2)
        await books.save(book)
        await bus.flush()
        assert [type(e) for e in recorder.published()] == [GradebookOpened, GradeRecorded]
        stale = await books.get("e5")
        book.grade("lab 2", 2, 2)
        await books.save(book)
        stale.grade("lab 2", 0, 2)
        with pytest.raises(StreamVersionConflict):
            await books.save(stale)
        await bus.flush()
        assert len(recorder.published()) == 3  # the refused save published nothing
    finally:
        await bus.stop()


def test_bad_inputs_are_refused_before_anything_is_written() -> None:
    with pytest.raises(ValueError, match="snapshot_every"):
        AggregateRepository(EventStore.__new__(EventStore), Gradebook, snapshot_every=0)
    with pytest.raises(TypeError, match="async"):

        class Sync(Projection):
            @applies(GradeRecorded)
            def _graded(self, event: GradeRecorded, tx: AsyncSession) -> None: ...


async def test_stream_ids_and_versions_are_bounded(store: EventStore) -> None:
    event = [GradebookOpened(enrollment_id=uuid.uuid4())]
    with pytest.raises(ValueError, match="stream id"):
        await store.append("x" * 201, event, expected_version=0)
    with pytest.raises(ValueError, match="expected_version"):
        await store.append("s", event, expected_version=-1)
    assert await store.append("s", [], expected_version=0) == 0
    assert await store.version("s") == 0


# SQLite writers hold the database's write lock from BEGIN, so no other writer
# can append between a unit's read and its save: the race is PostgreSQL's
POSTGRES_ONLY = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)]
)


class RacedBooks(AggregateRepository[Gradebook]):
    """Loads a book, then lets another writer append before the caller saves (once)."""

    raced = False

    async def get(self, id: str) -> Gradebook:
        found = await super().get(id)
        if not self.raced:
            self.raced = True
            other = AggregateRepository(self.store, Gradebook, snapshot_every=None)
            # its own unit of work on its own connection, as another request's would be
            await asyncio.create_task(
                other.update(id, lambda book: book.grade("quiz", 7, 10)),
                context=contextvars.Context(),
            )
        return found


@POSTGRES_ONLY
async def test_update_loads_again_and_reruns_the_command_when_a_writer_won(
    store: EventStore,
) -> None:
    plain = AggregateRepository(store, Gradebook, snapshot_every=None)
    await plain.update("e5", lambda book: book.open(uuid.uuid4()))
    books = RacedBooks(store, Gradebook, snapshot_every=None)
    runs: list[int] = []

    def grade(book: Gradebook) -> None:
        runs.append(book.version)
        book.grade("lab 1", 9, 10)

    saved = await books.update("e5", grade)
    assert runs == [1, 2]  # the first run read version 1; the quiz made it 2
    assert saved.version == 3
    assert saved.pending == ()
    again = await plain.get("e5")
    assert again.state.grades == {"quiz": 70.0, "lab 1": 90.0}
    with pytest.raises(Conflict, match="already open"):  # the domain's own error passes
        await plain.update("e5", lambda book: book.open(uuid.uuid4()))
    assert (await plain.get("e5")).version == 3


@POSTGRES_ONLY
async def test_update_in_a_callers_unit_reruns_with_that_unit(store: EventStore) -> None:
    plain = AggregateRepository(store, Gradebook, snapshot_every=None)
    await plain.update("e6", lambda book: book.open(uuid.uuid4()))
    books = RacedBooks(store, Gradebook, snapshot_every=None)
    units = 0

    async def grade_with_more(tx: AsyncSession) -> int:
        nonlocal units
        units += 1
        await tx.execute(insert(Averages.table).values(assignment=f"u{units}", count=1, total=1))
        found = await books.update("e6", lambda book: book.grade("lab 2", 5, 10), tx=tx)
        return found.version

    async with store.database.engine.begin() as conn:
        await conn.run_sync(lambda sync: Averages.table.create(sync, checkfirst=True))
    assert await store.database.run(grade_with_more) == 3
    assert units == 2  # the whole unit ran again, not only the append
    assert await Averages().rows(store.database) == {"u2": (1, 1)}  # the first was rolled back
    assert (await plain.get("e6")).state.grades == {"quiz": 70.0, "lab 2": 50.0}


async def test_concurrent_updates_of_one_aggregate_all_land(store: EventStore) -> None:
    books = AggregateRepository(store, Gradebook, snapshot_every=2)
    await books.update("e7", lambda book: book.open(uuid.uuid4()))
    await asyncio.gather(
        *(
            books.update("e7", lambda book, n=n: book.grade(f"lab {n}", n, 10), attempts=12)
            for n in range(6)
        )
    )
    book = await books.get("e7")
    assert book.version == 7
    assert book.state.grades == {f"lab {n}": 10.0 * n for n in range(6)}
    snapshot = await store.snapshot("gradebook-e7")
    assert snapshot is not None
    assert snapshot[0] == 6


async def test_concurrent_runners_apply_each_event_once(store: EventStore) -> None:
    async with store.database.engine.begin() as conn:
        await conn.run_sync(lambda sync: Averages.table.create(sync, checkfirst=True))
    books = AggregateRepository(store, Gradebook, snapshot_every=None)
    for n in range(5):
        await books.update(f"r{n}", lambda book: book.open(uuid.uuid4()))
        await books.update(f"r{n}", lambda book, n=n: book.grade("lab", n, 10))
    runners = [ProjectionRunner(store, Averages(), batch=2) for _ in range(3)]
    taken = await asyncio.gather(*(runner.catch_up() for runner in runners))
    assert sum(taken) == 5  # whichever runner took a batch, each event once
    assert await Averages().rows(store.database) == {"lab": (5, 10)}
    assert {await runner.position() for runner in runners} == {
        (await store.read_all())[-1].position
    }


async def test_an_older_snapshot_never_replaces_a_newer_one(store: EventStore) -> None:
    newer, older = GradebookState(open=True, grades={"b": 2.0}), GradebookState(open=True)
    await asyncio.gather(
        store.save_snapshot("gradebook-s", 40, newer),
        store.save_snapshot("gradebook-s", 20, older),
    )
    await store.save_snapshot("gradebook-s", 20, older)
    found = await store.snapshot("gradebook-s")
    assert found is not None
    assert found[0] == 40
    assert found[1]["grades"] == {"b": 2.0}
