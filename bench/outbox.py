"""Outbox: commit-to-broker-ack latency through the PostgreSQL outbox vs publishing directly.

Both variants publish small events to NATS JetStream at a steady
``--rate`` (500 events/s by default), one event per call, paced on a
schedule (open loop: a late event does not delay the next one's start),
for ``--seconds`` per variant per round, in interleaved rounds:

* ``direct``: ``await bus.publish(event)`` on :class:`NatsTransport`; the
  latency is from the call to its return (JetStream acknowledged);
* ``outbox``: ``async with db.transaction() as tx: await bus.publish(event,
  outbox=tx)`` on PostgreSQL, one event per transaction; the latency is
  from the moment the commit completed (the session's ``after_commit``,
  which fires before ``transaction()`` returns) to the moment the relay's
  ``transport.publish`` returned with JetStream's acknowledgement for that
  event. The transaction itself is not counted (it is the service's cost,
  not the outbox's): its p50/p99 are printed under the tables.

The relay is the production one (woken by the commit, rows deleted once
the broker confirmed them); only its transport's ``publish`` is wrapped to
note the time of each acknowledgement. Once set up, the process freezes
its start-up objects out of full garbage collections, as a started
service does (``LMS_GC_FREEZE``); without that, each full collection of
this process was a ~110 ms stall, which alone made the p99.

Target (issue 12): the outbox adds <= 2 ms p99 (the outbox's p99 minus
direct publishing's p99, the median over rounds). Needs NATS on 4222 and
PostgreSQL (``LMS_BENCH_POSTGRES_URL``, else ``LMS_TEST_POSTGRES_URL``,
else ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``); a private
schema and stream, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from rich.console import Console
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench._load import loop_factory
from bench._report import Comparison, parser, save
from bench.brokers import NATS_URL, drop_stream
from lms_shared.db import Database, DatabaseConfig
from lms_shared.events import Event, EventBus, Message, Transport
from lms_shared.events.sql import SqlOutbox, create_event_tables
from lms_shared.gcfreeze import freeze_startup_objects
from lms_shared.testing import DEFAULT_POSTGRES_URL, postgres_unreachable

TARGET_MS = 2.0  # the outbox adds at most this much to the p99
NAMES = {"direct": "publish to NATS", "outbox": "outbox on PostgreSQL"}
PAD = "x" * 200


class Ticked(Event, type="lms.bench.outbox.ticked"):
    """A small event (~300 bytes of data)."""

    n: int
    pad: str


class _AckClock:
    """Wraps a transport's ``publish``: notes when each message was acknowledged."""

    def __init__(self, inner: Transport, acked: dict[str, float]) -> None:
        self.inner = inner
        self.acked = acked

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def publish(self, messages: Sequence[Message]) -> None:
        await self.inner.publish(messages)
        now = time.perf_counter()
        for message in messages:
            self.acked[message.id] = now


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


async def _paced(rate: float, seconds: float, one: Callable[[int], Awaitable[None]]) -> None:
    """Start ``one(n)`` at ``rate`` per second for ``seconds`` (open loop); wait for all."""
    loop = asyncio.get_running_loop()
    count = int(rate * seconds)
    started = loop.time()
    tasks: list[asyncio.Task[None]] = []
    for n in range(count):
        delay = started + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(n)))
    await asyncio.wait_for(asyncio.gather(*tasks), 60)


async def _direct(bus: EventBus, rate: float, seconds: float) -> list[float]:
    """Milliseconds from ``bus.publish(event)`` to its return (the broker's ack)."""
    latencies: list[float] = []

    async def one(n: int) -> None:
        event = Ticked(n=n, pad=PAD)
        started = time.perf_counter()
        await bus.publish(event)
        latencies.append((time.perf_counter() - started) * 1000)

    await _paced(rate, seconds, one)
    return latencies


async def _outbox(
    bus: EventBus, db: Database, acked: dict[str, float], rate: float, seconds: float
) -> tuple[list[float], list[float]]:
    """Milliseconds from each commit to the relay's ack, and each transaction's own time."""
    committed: dict[str, float] = {}
    transactions: list[float] = []

    async def one(n: int) -> None:
        started = time.perf_counter()
        async with db.transaction() as tx:
            sent = await bus.publish(Ticked(n=n, pad=PAD), outbox=tx)

            def done(*_: object) -> None:
                committed[sent.id] = time.perf_counter()

            sa_event.listen(tx.sync_session, "after_commit", done)
        transactions.append((time.perf_counter() - started) * 1000)

    acked.clear()
    await _paced(rate, seconds, one)
    deadline = time.monotonic() + 30
    while not committed.keys() <= acked.keys():
        if time.monotonic() > deadline:
            raise RuntimeError("the relay did not publish every committed event within 30 s")
        await asyncio.sleep(0.01)
    latencies = [(acked[key] - at) * 1000 for key, at in committed.items()]
    return latencies, transactions


async def measure(url: str, rounds: int, seconds: float, rate: float) -> list[Comparison]:
    """Three tables (p50, p95, p99 per round), the outbox against direct publishing."""
    from lms_shared.events._nats import NatsTransport  # noqa: PLC0415 - the nats extra

    schema = f"lms_bench_{secrets.token_hex(4)}"
    admin = create_async_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    namespace = f"benchoutbox{secrets.token_hex(4)}"
    db = Database(DatabaseConfig.for_url(url, service="bench", schema=schema, pool_size=10))
    direct = EventBus(NatsTransport(NATS_URL, namespace=namespace), source="/bench")
    through = EventBus(NatsTransport(NATS_URL, namespace=namespace), source="/bench")
    through.use_outbox(SqlOutbox(db))
    acked: dict[str, float] = {}
    relay = through.relay
    assert relay is not None
    relay.transport = cast(Transport, _AckClock(relay.transport, acked))
    tables = {
        q: Comparison(
            title=f"commit -> broker ack, {q}, {rate:,.0f} events/s for {seconds:g} s a round",
            unit=f"ms {q}",
            higher_is_better=False,
            names=NAMES,
            baselines=("direct",),
            gating=q == "p99",
        )
        for q in ("p50", "p95", "p99")
    }
    added: list[float] = []
    transactions: list[float] = []
    try:
        await db.start()
        await create_event_tables(db)
        for bus in (direct, through):
            bus.publishes(Ticked)
            await bus.start()
        freeze_startup_objects()  # as a started service does (LMS_GC_FREEZE)
        await _direct(direct, rate, 0.5)  # warm up: connections, statement caches
        await _outbox(through, db, acked, rate, 0.5)
        for n in range(rounds):
            results: dict[str, list[float]] = {}
            order = ["direct", "outbox"] if n % 2 == 0 else ["outbox", "direct"]
            for key in order:
                if key == "direct":
                    results[key] = await _direct(direct, rate, seconds)
                else:
                    results[key], spent = await _outbox(through, db, acked, rate, seconds)
                    transactions += spent
            p99s = {}
            for key, samples in results.items():
                p50, p95, p99 = _percentiles(samples)
                tables["p50"].add(key, p50)
                tables["p95"].add(key, p95)
                tables["p99"].add(key, p99)
                p99s[key] = p99
            added.append(p99s["outbox"] - p99s["direct"])
        left = await SqlOutbox(db).pending()
    finally:
        for bus in (through, direct):
            await bus.stop()
        await db.stop()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()
        await drop_stream(f"{namespace}-events")
    adds = statistics.median(added)
    verdict = "[green]met[/green]" if adds <= TARGET_MS else "[red]MISSED[/red]"
    p99 = tables["p99"]
    p99.notes.append(
        f"target: the outbox adds {adds:.2f} ms p99 (per round: "
        f"{', '.join(f'{a:.2f}' for a in added)}), needs <= {TARGET_MS:g} ms: {verdict}"
    )
    t50, _, t99 = _percentiles(transactions)
    p99.notes.append(
        f"not counted: the transaction itself (BEGIN, outbox INSERT, COMMIT) took "
        f"{t50:.2f} ms p50, {t99:.2f} ms p99; outbox rows left: {left}"
    )
    return list(tables.values())


def main(argv: list[str] | None = None) -> int:
    """Run the outbox benchmark; 1 under ``--check`` when the target is missed."""
    cli = parser("outbox", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    cli.add_argument("--seconds", type=float, help="seconds per variant per round (default 6)")
    cli.add_argument("--rate", type=float, default=500.0, help="events per second (500)")
    cli.add_argument("--url", help="PostgreSQL URL (default: LMS_BENCH_POSTGRES_URL)")
    opts: Any = cli.parse_args(sys.argv[1:] if argv is None else argv)
    rounds = opts.rounds or (1 if opts.quick else 3)
    seconds = opts.seconds or (1.5 if opts.quick else 6.0)
    url = opts.url or os.environ.get(
        "LMS_BENCH_POSTGRES_URL", os.environ.get("LMS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    )
    console = Console()
    reason = postgres_unreachable(url)
    if reason is not None:
        console.print(f"outbox: skipped, {reason}")
        return 1 if opts.check else 0
    console.print(f"[bold]bench outbox[/bold]: Python {platform.python_version()}", highlight=False)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        tables = runner.run(measure(url, rounds, seconds, opts.rate))
    for table in tables:
        table.render(console)
    if opts.save:
        path = save("outbox", tables, rounds=rounds, seconds=seconds, rate=opts.rate)
        console.print(f"saved {path}")
    missed = any("MISSED" in note for table in tables for note in table.notes)
    return 1 if opts.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
