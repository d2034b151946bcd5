"""The outbox and the inbox under broker faults: 10,000 events, each handled once.

A producer bus commits 10,000 events through its SQL outbox on PostgreSQL
(``bus.publish(events, outbox=tx)``, 100 events per transaction, paced so
that committing goes on while the broker is down), and the relay publishes
them. A consumer bus in another group handles them through the SQL inbox:
the handler writes one effect row in the inbox's unit of work, so effect
and record commit together. Mid-run the broker fails:

* NATS: three nats-server processes on loopback form a JetStream cluster,
  the stream has three replicas; the stream's leader is killed (SIGKILL)
  and started again a couple of seconds later;
* Redis: a private redis-server with an append-only file (``appendfsync
  always``) is killed and started again on the same port and folder.

Then every committed event has exactly one effect row, the outbox is
empty, nothing was dead-lettered, and the duplicates the inbox absorbed
(redeliveries, a batch the relay published again) are counted and printed.

Every wait is bounded; the servers are killed by their process ids, the
private schema dropped. Without nats-server or redis-server the test skips;
under ``CI=true`` it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from lms_shared.db import Database, DatabaseConfig
from lms_shared.events import EventBus, Outcome, Transport, TransportUnavailable, current_event
from lms_shared.events._nats import NatsTransport
from lms_shared.events._redis import RedisStreamsTransport
from lms_shared.events.sql import (
    SqlDeadLetterStore,
    SqlInbox,
    SqlOutbox,
    create_event_tables,
    event_tables,
)

from ._bus_models import CoursePublished
from ._nats_servers import NatsNode, cluster, nats_server_binary
from ._redis_servers import PrivateRedis, redis_binary

__all__ = ["cluster"]  # a fixture, used by name

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EVENTS, PER_TRANSACTION = 10_000, 100
PACE = 0.04  # seconds between the producer's transactions: committing lasts ~4 s
GROUP = "search"
SETTLE = 90.0  # a bound, not a target: the run takes ~30 s on 2 cores


@dataclass
class Store:
    """The database of both services (one schema), its tables."""

    db: Database
    outbox: Table
    inbox: Table
    dead_letters: Table
    effects: Table


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[Store]:
    """A private schema with the event tables and an effects table, dropped afterwards."""
    schema = f"lms_of_{secrets.token_hex(5)}"
    admin = create_async_engine(postgres_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    config = DatabaseConfig.for_url(
        postgres_url, service="outbox-faults", schema=schema, pool_size=24
    )
    db = Database(config)
    try:
        await db.start()
        metadata = MetaData()
        outbox, inbox, dead_letters = event_tables(metadata)
        effects = Table(
            "fault_effects",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("event_id", String(255), nullable=False),
        )
        await create_event_tables(db, metadata)
        yield Store(db, outbox, inbox, dead_letters, effects)
    finally:
        await db.stop()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


@dataclass
class Progress:
    """What the run has done so far (read by the fault, reported at the end)."""

    started: float = field(default_factory=time.monotonic)
    committed: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    most_relay_failures: int = 0
    timeline: dict[str, float] = field(default_factory=dict)

    def mark(self, what: str) -> None:
        """Note when ``what`` happened first (seconds since the start)."""
        self.timeline.setdefault(what, round(time.monotonic() - self.started, 1))


async def start_within(transport: Transport, *, timeout: float = 30.0) -> None:
    """Start once the broker answers (a fresh cluster elects its leaders first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await transport.start()
            return
        except TransportUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate``; fail after ``timeout`` seconds saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


async def run_through_the_outbox(
    store: Store,
    producer_transport: Transport,
    consumer_transport: Transport,
    fault: Callable[[Progress], Awaitable[None]],
) -> Progress:
    """Commit EVENTS events through the outbox while ``fault`` runs; wait until all are handled.

    Returns the progress once every committed event has its effect row and
    the outbox is empty (or fails the test after ``SETTLE`` seconds).
    """
    db = store.db
    producer = EventBus(producer_transport, source="/courses", group="courses")
    producer.use_outbox(SqlOutbox(db))
    producer.publishes(CoursePublished)
    consumer = EventBus(
        consumer_transport,
        source="/search",
        group=GROUP,
        inbox=SqlInbox(db),
        dead_letters=SqlDeadLetterStore(db),
    )
    progress = Progress()
    effects = store.effects

    @consumer.subscribe(CoursePublished, concurrency=16, ack_wait=5.0)
    async def index(event: CoursePublished, tx: AsyncSession) -> None:
        context = current_event()
        assert context is not None
        await tx.execute(insert(effects).values(event_id=context.event.id))

    def observe(outcome: Outcome) -> None:
        progress.outcomes[outcome.result] += 1

    consumer.observe(observe)
    handled = 0

    async def count_effects() -> None:
        nonlocal handled
        while True:
            async with db.transaction(read_only=True) as tx:
                handled = int(await tx.scalar(select(func.count()).select_from(effects)) or 0)
                pending = await tx.scalar(select(func.count()).select_from(store.outbox))
            if len(progress.committed) == EVENTS and not pending:
                progress.mark("outbox empty")
            relay = producer.relay
            assert relay is not None
            progress.most_relay_failures = max(progress.most_relay_failures, relay.failures)
            await asyncio.sleep(0.2)

    async def commit_all() -> None:
        for n in range(0, EVENTS, PER_TRANSACTION):
            events = [
                CoursePublished(course_id=uuid.uuid4(), title=f"course {n + i}")
                for i in range(PER_TRANSACTION)
            ]
            async with db.transaction() as tx:
                sent = await producer.publish(events, outbox=tx)
            progress.committed.extend(event.id for event in sent)
            await asyncio.sleep(PACE)
        progress.mark("all committed")

    await start_within(producer_transport)
    await start_within(consumer_transport)
    await consumer.start()
    await producer.start()
    progress.started = time.monotonic()
    counter = asyncio.create_task(count_effects())
    try:
        async with asyncio.timeout(SETTLE):
            await asyncio.gather(commit_all(), fault(progress))
            await until(lambda: handled >= EVENTS, SETTLE, "every event handled")
            progress.mark("all handled")
    except TimeoutError:
        relay = producer.relay
        raise AssertionError(
            f"not settled within {SETTLE} s: {len(progress.committed)} committed, "
            f"{handled} handled, outcomes {dict(progress.outcomes)}, relay failures "
            f"{relay and relay.failures} ({relay and relay.last_error}), "
            f"timeline {progress.timeline}"
        ) from None
    finally:
        counter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await counter
        await producer.stop()
        await consumer.stop()

    async with db.transaction(read_only=True) as tx:
        rows = (await tx.execute(select(effects.c.event_id))).scalars().all()
        left = await tx.scalar(select(func.count()).select_from(store.outbox))
        dead = await tx.scalar(select(func.count()).select_from(store.dead_letters))
        recorded = await tx.scalar(
            select(func.count())
            .select_from(store.inbox)
            .where(store.inbox.c.consumer_group == GROUP)
        )
    per_event = Counter(rows)
    assert len(progress.committed) == len(set(progress.committed)) == EVENTS
    assert set(per_event) == set(progress.committed)  # every event handled, nothing else
    assert max(per_event.values()) == 1  # each effect once: the inbox absorbed the rest
    assert recorded == EVENTS
    assert left == 0  # the outbox is empty: each row deleted once the broker confirmed it
    assert dead == 0
    assert progress.outcomes["handled"] == EVENTS
    return progress


def report(name: str, progress: Progress, started: float) -> None:
    print(
        f"\n{name}: {EVENTS} events handled once in {time.monotonic() - started:.1f} s; "
        f"duplicates absorbed by the inbox: {progress.outcomes['duplicate']}; "
        f"outcomes {dict(progress.outcomes)}; "
        f"relay failures in a row, at most: {progress.most_relay_failures}; "
        f"timeline (s) {progress.timeline}"
    )


async def test_killing_the_stream_leader_mid_run_loses_no_event_of_the_outbox(
    store: Store, cluster: list[NatsNode]
) -> None:
    def transport() -> NatsTransport:
        return NatsTransport(
            [node.url for node in cluster],
            namespace="outboxfaults",
            replicas=3,
            pull_expires=1.0,
            publish_timeout=3.0,
            request_timeout=3.0,
        )

    producer, consumer = transport(), transport()
    killed: list[str] = []

    async def kill_the_leader(progress: Progress) -> None:
        await until(lambda: len(progress.committed) >= EVENTS * 3 // 10, 30, "30% committed")
        assert producer._js is not None
        info = await producer._js.stream_info(producer.stream)
        assert info.cluster is not None
        assert info.cluster.leader
        leader = next(node for node in cluster if node.name == info.cluster.leader)
        leader.kill()
        progress.mark("leader killed")
        killed.append(leader.name)
        await asyncio.sleep(2.0)  # committing goes on; the relay publishes to the new leader
        leader.start(nats_server_binary())
        progress.mark("leader restarted")

    started = time.monotonic()
    progress = await run_through_the_outbox(store, producer, consumer, kill_the_leader)
    assert len(killed) == 1
    report(f"NATS cluster, leader {killed[0]} killed", progress, started)


async def test_a_redis_restarted_mid_run_loses_no_event_of_the_outbox(store: Store) -> None:
    binary = redis_binary()
    folder = Path(tempfile.mkdtemp(prefix="lms-outbox-faults-"))
    server = PrivateRedis(binary, folder)
    try:
        server.start()

        def transport() -> RedisStreamsTransport:
            return RedisStreamsTransport(
                server.url, namespace="outboxfaults", timeout=1.0, block=0.2, poll=0.2
            )

        async def restart_redis(progress: Progress) -> None:
            await until(lambda: len(progress.committed) >= EVENTS * 3 // 10, 30, "30% committed")
            server.kill()
            progress.mark("redis killed")
            await asyncio.sleep(1.5)  # committing goes on; publishing fails meanwhile
            server.start()  # same port, same append-only file
            progress.mark("redis restarted")

        started = time.monotonic()
        progress = await run_through_the_outbox(store, transport(), transport(), restart_redis)
        report("Redis restarted", progress, started)
    finally:
        server.kill()
        shutil.rmtree(folder, ignore_errors=True)
    assert server.starts == 2
