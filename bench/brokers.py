"""Brokers: the event bus on NATS JetStream and Redis Streams against their raw clients.

The same work for every variant, side by side in one run: ``--events``
events of 1 KB published in batches of ``--batch`` (each batch confirmed
by the broker before the next) while one consumer acks each delivery; the
rate is events per second from the first publish to the last ack.

* ``bus on NATS``: :class:`~lms_shared.events.EventBus` over
  :class:`NatsTransport` (validated, stamped CloudEvents in binary mode,
  a durable pull consumer, an ack after each handler);
* ``raw nats-py``: ``js.publish`` pipelined per batch and a durable pull
  subscription fetching batches and acking each message;
* ``bus on Redis``: the bus over :class:`RedisStreamsTransport`;
* ``raw redis-py``: a pipelined ``XADD`` per batch and ``XREADGROUP`` /
  ``XACK`` in a consumer group.

Targets (issue 12): the bus >= 0.8x the raw client on both. FastStream is
not compared here (it would be a bench-only dependency this repo does not
install). Needs the servers of this machine (NATS on 4222, Redis on 6379).
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time
import uuid
from typing import Any

from rich.console import Console

from bench._load import loop_factory
from bench._report import Comparison, parser, save
from lms_shared.events import Event, EventBus

NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"
MIN_RATIO = 0.8
NAMES = {
    "nats-raw": "raw nats-py",
    "nats-bus": "bus on NATS",
    "redis-raw": "raw redis-py",
    "redis-bus": "bus on Redis",
}
PAYLOAD = "x" * 1000


class Padded(Event, type="lms.bench.padded"):
    """A 1 KB event."""

    pad: str


async def _bus(transport: Any, count: int, batch: int) -> float:
    bus = EventBus(transport, source="/bench", group="bench", drain_timeout=5)
    bus.publishes(Padded)
    done = asyncio.Event()
    seen = 0

    @bus.subscribe(Padded, concurrency=256)
    async def handle(event: Padded) -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            done.set()

    await bus.start()
    try:
        events = [Padded(pad=PAYLOAD) for _ in range(count)]
        started = time.perf_counter()
        for start in range(0, count, batch):
            await bus.publish(events[start : start + batch])
        await asyncio.wait_for(done.wait(), 300)
        return count / (time.perf_counter() - started)
    finally:
        await bus.stop()


async def bus_on_nats(count: int, batch: int) -> float:
    """Events/s through the bus on NATS JetStream."""
    from lms_shared.events._nats import NatsTransport  # noqa: PLC0415 - the nats extra

    transport = NatsTransport(NATS_URL, namespace=f"bench{uuid.uuid4().hex[:8]}")
    try:
        return await _bus(transport, count, batch)
    finally:
        await _drop_stream(transport.stream)


async def _drop_stream(stream: str) -> None:
    import nats  # noqa: PLC0415

    client = await nats.connect(NATS_URL)
    try:
        await client.jetstream().delete_stream(stream)
    except Exception:
        pass
    finally:
        await client.close()


async def raw_nats(count: int, batch: int) -> float:
    """Events/s with nats-py alone doing the same work."""
    import nats  # noqa: PLC0415
    from nats.js.api import AckPolicy, ConsumerConfig  # noqa: PLC0415

    name = f"bench{uuid.uuid4().hex[:8]}"
    subject = f"{name}.events.padded"
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    await js.add_stream(name=f"{name}-events", subjects=[f"{name}.events.>"])
    body = ('{"pad": "' + PAYLOAD + '"}').encode()
    headers = {"ce-specversion": "1.0", "ce-type": "lms.bench.padded", "ce-source": "/bench"}
    sub = await js.pull_subscribe(
        subject, durable="bench", config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
    )
    seen = 0

    async def consume() -> None:
        nonlocal seen
        while seen < count:
            try:
                messages = await sub.fetch(batch, timeout=5)
            except TimeoutError:
                continue
            for message in messages:
                await message.ack()
                seen += 1

    try:
        consumer = asyncio.create_task(consume())
        started = time.perf_counter()
        for start in range(0, count, batch):
            size = min(batch, count - start)
            await asyncio.gather(
                *(
                    js.publish(subject, body, headers={**headers, "ce-id": uuid.uuid4().hex})
                    for _ in range(size)
                )
            )
        await asyncio.wait_for(consumer, 300)
        return count / (time.perf_counter() - started)
    finally:
        await js.delete_stream(f"{name}-events")
        await client.close()


async def bus_on_redis(count: int, batch: int) -> float:
    """Events/s through the bus on Redis Streams."""
    from lms_shared.events._redis import RedisStreamsTransport  # noqa: PLC0415 - the redis extra

    transport = RedisStreamsTransport(REDIS_URL, namespace=f"bench{uuid.uuid4().hex[:8]}")
    try:
        return await _bus(transport, count, batch)
    finally:
        await transport.start()
        await transport.destroy()
        await transport.stop()


async def raw_redis(count: int, batch: int) -> float:
    """Events/s with redis-py alone doing the same work."""
    import redis.asyncio as redis  # noqa: PLC0415

    client = redis.Redis.from_url(REDIS_URL)
    stream = f"bench:{uuid.uuid4().hex[:8]}"
    await client.xgroup_create(stream, "bench", id="$", mkstream=True)
    fields = {
        "ce_specversion": "1.0",
        "ce_type": "lms.bench.padded",
        "ce_source": "/bench",
        "data": ('{"pad": "' + PAYLOAD + '"}').encode(),
    }
    seen = 0

    async def consume() -> None:
        nonlocal seen
        while seen < count:
            answer = await client.xreadgroup("bench", "c1", {stream: ">"}, count=batch, block=1000)
            for _, entries in answer or []:
                ids = [entry_id for entry_id, _ in entries]
                if ids:
                    await client.xack(stream, "bench", *ids)
                    seen += len(ids)

    try:
        consumer = asyncio.create_task(consume())
        started = time.perf_counter()
        for start in range(0, count, batch):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(batch, count - start)):
                pipe.xadd(stream, {**fields, "ce_id": uuid.uuid4().hex})
            await pipe.execute()
        await asyncio.wait_for(consumer, 300)
        return count / (time.perf_counter() - started)
    finally:
        await client.delete(stream)
        await client.aclose()


async def measure(rounds: int, count: int, batch: int) -> list[Comparison]:
    """One table per broker, the bus against the raw client."""
    tables = []
    for broker, raw, bus in (("NATS JetStream", raw_nats, bus_on_nats),
                             ("Redis Streams", raw_redis, bus_on_redis)):  # fmt: skip
        key = "nats" if broker.startswith("NATS") else "redis"
        table = Comparison(
            title=f"{broker}: publish + consume, {count:,} events of 1 KB, batches of {batch}",
            unit="events/s",
            higher_is_better=True,
            names={f"{key}-raw": NAMES[f"{key}-raw"], f"{key}-bus": NAMES[f"{key}-bus"]},
            baselines=(f"{key}-raw",),
        )
        for _ in range(rounds):  # interleaved: noise hits both alike
            table.add(f"{key}-raw", await raw(count, batch))
            table.add(f"{key}-bus", await bus(count, batch))
        ratio = table.median(f"{key}-bus") / table.median(f"{key}-raw")
        verdict = "[green]met[/green]" if ratio >= MIN_RATIO else "[red]MISSED[/red]"
        table.notes.append(f"target: bus / raw = {ratio:.2f}x, needs >= {MIN_RATIO}x: {verdict}")
        tables.append(table)
    return tables


def main(argv: list[str] | None = None) -> int:
    """Run the broker benchmark; 1 under ``--check`` when a target is missed."""
    cli = parser("brokers", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    cli.add_argument("--events", type=int, help="events per variant per round")
    cli.add_argument("--batch", type=int, default=100, help="events per publish call")
    opts: Any = cli.parse_args(sys.argv[1:] if argv is None else argv)
    rounds = opts.rounds or (1 if opts.quick else 3)
    count = opts.events or (2_000 if opts.quick else 10_000)
    console = Console()
    console.print(
        f"[bold]bench brokers[/bold]: Python {platform.python_version()}", highlight=False
    )
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        tables = runner.run(measure(rounds, count, opts.batch))
    for table in tables:
        table.render(console)
    if opts.save:
        console.print(f"saved {save('brokers', tables, rounds=rounds, events=count)}")
    missed = any("MISSED" in note for table in tables for note in table.notes)
    return 1 if opts.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
