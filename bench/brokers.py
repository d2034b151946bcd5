"""Brokers: the event bus on NATS JetStream and Redis Streams against raw clients and FastStream.

The same work for every variant, side by side in one run: ``--events``
events of 1 KB published in batches of ``--batch`` (each batch confirmed
by the broker before the next) while one consumer acks each delivery; the
rate is events per second from the first publish to the last ack.

* ``bus on NATS``: :class:`~lms_shared.events.EventBus` over
  :class:`NatsTransport` (validated, stamped CloudEvents in binary mode,
  a durable pull consumer, an ack after each handler);
* ``raw nats-py``: ``js.publish`` pipelined per batch and a durable pull
  subscription fetching batches and acking each message;
* ``FastStream NATS consumer``: a FastStream ``NatsBroker`` subscriber (a
  pydantic body, its default ack after the handler, logging off) on a
  durable JetStream pull consumer fetching batches, fed by the same
  ``js.publish`` calls as raw nats-py;
* ``bus on Redis``: the bus over :class:`RedisStreamsTransport`;
* ``raw redis-py``: a pipelined ``XADD`` per batch and ``XREADGROUP`` /
  ``XACK`` in a consumer group.

**The same work.** The raw variants are hand-written CloudEvents
producers and consumers in binary mode: every event carries exactly the
headers (NATS: ``ce-<name>``, plus ``Nats-Expected-Stream``) or fields
(Redis: ``ce_<name>`` and ``data``; ``XADD`` with the bus's ``MAXLEN ~``)
the bus sends, with the same names and values: a fresh ``id`` (a UUID)
and ``time`` (RFC 3339, UTC) per event, ``source``, ``specversion``,
``type``, ``datacontenttype``, ``schemaversion``, and a ``traceparent``
and ``correlationid`` per publish call (as the bus stamps a batch); the
data is serialised per event. Their consumers read the attributes back
(nats-py parses the headers; the Redis consumer decodes the ``ce_``
fields to text) and parse the data with ``orjson.loads``, as the bus
does, but check nothing: no CloudEvents validation, no schema
validation, no dead letters, retries, inbox or trace context. That gap is
what the bus ratio measures.

FastStream is fed the very messages raw nats-py publishes (all the bus's
headers); it validates the body with pydantic and acks after the
handler, and reads the headers only as nats-py parses them: it does not
validate CloudEvents attributes, and has no dead letters, bounded
retries with backoff, or trace continuation across events.

redis-py parses replies with hiredis (its C parser) when it is installed,
as the ``redis`` extra and the dev dependencies install it: for both
Redis variants alike, so the raw client then spends far less per event
and the bus ratio measures the bus's own work more sharply.

Targets (issue 12): the bus >= 0.8x the raw client on both brokers, and
>= 2x FastStream's NATS consumer. Needs the servers of this machine (NATS
on 4222, Redis on 6379) and the ``faststream[nats]`` dev dependency.
"""

from __future__ import annotations

import asyncio
import platform
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pydantic
from rich.console import Console

from bench._load import loop_factory
from bench._report import Comparison, Target, parser, save
from lms_shared.events import Event, EventBus

NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"
NAMES = {
    "nats-raw": "raw nats-py",
    "nats-faststream": "FastStream NATS consumer",
    "nats-bus": "bus on NATS",
    "redis-raw": "raw redis-py",
    "redis-bus": "bus on Redis",
}
TARGETS = {
    "nats": (
        Target("nats-bus", "nats-raw", 0.8),
        Target("nats-bus", "nats-faststream", 2.0),
    ),
    "redis": (Target("redis-bus", "redis-raw", 0.8),),
}
PAYLOAD = "x" * 1000


class Padded(Event, type="lms.bench.padded"):
    """A 1 KB event."""

    pad: str


class PaddedBody(pydantic.BaseModel):
    """The same event's data, as a FastStream handler takes it."""

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
        await drop_stream(transport.stream)


async def drop_stream(stream: str) -> None:
    """Delete a bench stream from the machine's NATS (gone already is fine)."""
    import nats  # noqa: PLC0415

    client = await nats.connect(NATS_URL)
    try:
        await client.jetstream().delete_stream(stream)
    except Exception:
        pass
    finally:
        await client.close()


def _cloud_attributes() -> dict[str, str]:
    """The attributes the bus stamps on one publish call's events, but ``id`` and ``time``."""
    return {
        "source": "/bench",
        "specversion": "1.0",
        "type": Padded.event_type(),
        "datacontenttype": "application/json",
        "traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00",
        "correlationid": uuid.uuid4().hex,
        "schemaversion": "1",
    }


def _now() -> str:
    """``time`` as the bus writes it: RFC 3339, UTC, ``Z``."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _raw_nats_publisher(js: Any, subject: str, stream: str) -> Callable[[int], Awaitable[None]]:
    """Publish ``size`` events with ``js.publish``, pipelined, with the bus's headers."""

    async def publish(size: int) -> None:
        shared = {f"ce-{name}": value for name, value in _cloud_attributes().items()}
        await asyncio.gather(
            *(
                js.publish(
                    subject,
                    orjson.dumps({"pad": PAYLOAD}),
                    stream=stream,
                    headers={"ce-id": str(uuid.uuid4()), **shared, "ce-time": _now()},
                )
                for _ in range(size)
            )
        )

    return publish


async def raw_nats(count: int, batch: int) -> float:
    """Events/s with nats-py alone doing the same work."""
    import nats  # noqa: PLC0415
    from nats.js.api import AckPolicy, ConsumerConfig  # noqa: PLC0415

    name = f"bench{uuid.uuid4().hex[:8]}"
    subject = f"{name}.events.padded"
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    await js.add_stream(name=f"{name}-events", subjects=[f"{name}.events.>"])
    publish = _raw_nats_publisher(js, subject, f"{name}-events")
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
                headers = message.headers or {}
                if headers["ce-type"] and headers["ce-id"]:
                    orjson.loads(message.data)
                await message.ack()
                seen += 1

    try:
        consumer = asyncio.create_task(consume())
        started = time.perf_counter()
        for start in range(0, count, batch):
            await publish(min(batch, count - start))
        await asyncio.wait_for(consumer, 300)
        return count / (time.perf_counter() - started)
    finally:
        await js.delete_stream(f"{name}-events")
        await client.close()


async def faststream_nats(count: int, batch: int) -> float:
    """Events/s through a FastStream NATS subscriber, fed as raw nats-py publishes."""
    import nats  # noqa: PLC0415
    from faststream.nats import JStream, NatsBroker, PullSub  # noqa: PLC0415 - a dev dependency

    name = f"bench{uuid.uuid4().hex[:8]}"
    subject = f"{name}.events.padded"
    broker = NatsBroker(NATS_URL, logger=None)
    done = asyncio.Event()
    seen = 0

    @broker.subscriber(
        subject,
        stream=JStream(name=f"{name}-events", subjects=[f"{name}.events.>"]),
        durable="bench",
        pull_sub=PullSub(batch_size=batch, timeout=5),
    )
    async def handle(body: PaddedBody) -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            done.set()

    await broker.start()
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    publish = _raw_nats_publisher(js, subject, f"{name}-events")
    try:
        started = time.perf_counter()
        for start in range(0, count, batch):
            await publish(min(batch, count - start))
        await asyncio.wait_for(done.wait(), 300)
        return count / (time.perf_counter() - started)
    finally:
        await broker.stop()
        try:
            await js.delete_stream(f"{name}-events")
        finally:
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
    seen = 0

    async def consume() -> None:
        nonlocal seen
        while seen < count:
            answer = await client.xreadgroup("bench", "c1", {stream: ">"}, count=batch, block=1000)
            for _, entries in answer or []:
                ids = []
                for entry_id, fields in entries:
                    attributes = {
                        key[3:].decode(): value.decode()
                        for key, value in fields.items()
                        if key.startswith(b"ce_")
                    }
                    if attributes["type"] and attributes["id"]:
                        orjson.loads(fields[b"data"])
                    ids.append(entry_id)
                if ids:
                    await client.xack(stream, "bench", *ids)
                    seen += len(ids)

    try:
        consumer = asyncio.create_task(consume())
        started = time.perf_counter()
        for start in range(0, count, batch):
            shared = {f"ce_{name}": value for name, value in _cloud_attributes().items()}
            pipe = client.pipeline(transaction=False)
            for _ in range(min(batch, count - start)):
                fields = {"ce_id": str(uuid.uuid4()), **shared, "ce_time": _now()}
                fields["data"] = orjson.dumps({"pad": PAYLOAD})
                pipe.xadd(stream, fields, maxlen=1_000_000, approximate=True)
            await pipe.execute()
        await asyncio.wait_for(consumer, 300)
        return count / (time.perf_counter() - started)
    finally:
        await client.delete(stream)
        await client.aclose()


async def measure(rounds: int, count: int, batch: int) -> list[Comparison]:
    """One table per broker: the bus against the raw client (and FastStream on NATS)."""
    variants: dict[str, dict[str, Callable[[int, int], Awaitable[float]]]] = {
        "nats": {"nats-raw": raw_nats, "nats-faststream": faststream_nats, "nats-bus": bus_on_nats},
        "redis": {"redis-raw": raw_redis, "redis-bus": bus_on_redis},
    }
    tables = []
    for key, broker in (("nats", "NATS JetStream"), ("redis", "Redis Streams")):
        table = Comparison(
            title=f"{broker}: publish + consume, {count:,} events of 1 KB, batches of {batch}",
            unit="events/s",
            higher_is_better=True,
            names={name: NAMES[name] for name in variants[key]},
            baselines=(f"{key}-raw",),
            targets=TARGETS[key],
        )
        for _ in range(rounds):  # interleaved: noise hits every variant alike
            for name, run in variants[key].items():
                table.add(name, await run(count, batch))
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
    return 1 if opts.check and not all(table.met() for table in tables) else 0


if __name__ == "__main__":
    sys.exit(main())
