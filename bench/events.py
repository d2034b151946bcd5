"""Events: publish and consume through the embedded log, against the memory transport.

One table, 1 KB events, published in batches of ``--batch`` (each awaited:
confirmed, pipelined by batching) and consumed by one subscription
(``--concurrency``, 256 by default) that acks each delivery; the rate is events per
second from the first publish to the last ack:

* ``memory``: :class:`MemoryTransport`, publisher and consumer in one
  process (the floor: no storage at all);
* ``log, 1 process``: :class:`LogTransport` on a fresh file, both in one
  process (one worker thread, group commit);
* ``log, 2 processes``: the publisher here, the consumer in another
  process (``bench._events_consumer``) on another CPU: the demo's shape,
  with polling across processes.

Target (issue 12): the embedded log >= 5,000 events/s published and
consumed end to end across two processes. Rounds interleave the variants.
"""

from __future__ import annotations

import asyncio
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

from bench._events_consumer import TYPE
from bench._load import loop_factory
from bench._procs import cpu_split, pinned, spawn, stop
from bench._report import Comparison, parser, save
from lms_shared.events import Delivery, MemoryTransport, Message, SubscriptionSpec, Transport
from lms_shared.events._log import LogTransport

MIN_RATE = 5_000.0  # events/s, log across two processes
NAMES = {
    "memory": "MemoryTransport (1 process)",
    "log1": "LogTransport, 1 process",
    "log2": "LogTransport, 2 processes",
}
PAYLOAD = b'{"pad": "' + b"x" * 1000 + b'"}'  # ~1 KB of data


def _messages(count: int) -> list[Message]:
    return [
        Message(
            {
                "id": uuid.uuid4().hex,
                "source": "/bench/events",
                "specversion": "1.0",
                "type": TYPE,
                "datacontenttype": "application/json",
            },
            PAYLOAD,
        )
        for _ in range(count)
    ]


async def _publish(transport: Transport, messages: list[Message], batch: int) -> None:
    for start in range(0, len(messages), batch):
        await transport.publish(messages[start : start + batch])


async def in_process(
    transport: Transport, messages: list[Message], batch: int, concurrency: int
) -> float:
    """Events/s through one transport, publisher and consumer in this process."""
    await transport.start()
    done = asyncio.Event()
    seen = 0

    async def handle(delivery: Delivery) -> None:
        nonlocal seen
        await delivery.ack()
        seen += 1
        if seen >= len(messages):
            done.set()

    try:
        spec = SubscriptionSpec("bench", (TYPE,), concurrency=concurrency)
        await transport.subscribe(spec, handle)
        started = time.perf_counter()
        await _publish(transport, messages, batch)
        await asyncio.wait_for(done.wait(), 300)
        return len(messages) / (time.perf_counter() - started)
    finally:
        await transport.stop()


async def two_processes(
    folder: Path, messages: list[Message], batch: int, concurrency: int, cpus: set[int] | None
) -> tuple[float, float]:
    """(end-to-end events/s, publish-only events/s) with the consumer in a child."""
    path = folder / "events.sqlite3"
    child = spawn(
        "bench._events_consumer",
        str(path),
        str(len(messages)),
        str(concurrency),
        cpus=cpus,
        output=subprocess.PIPE,
    )
    publisher = LogTransport(path)
    try:
        assert child.stdout is not None
        ready = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
        if ready.strip() != b"ready":
            raise RuntimeError(f"consumer did not start: {ready!r}")
        await publisher.start()
        started = time.monotonic()
        await _publish(publisher, messages, batch)
        published = time.monotonic()
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 300)
        last = float(line)
        return len(messages) / (last - started), len(messages) / (published - started)
    finally:
        await publisher.stop()
        stop(child)


async def measure(rounds: int, count: int, batch: int, concurrency: int) -> list[Comparison]:
    """The table, plus the publish-only rate of the two-process variant."""
    result = Comparison(
        title=f"Publish + consume, {count:,} events of 1 KB, batches of {batch}",
        unit="events/s",
        higher_is_better=True,
        names=NAMES,
        baselines=("memory",),
    )
    publish_only = Comparison(
        title="Publish alone (log, the 2-process variant's publisher)",
        unit="events/s",
        higher_is_better=True,
        names={"log2": "LogTransport publish"},
        gating=False,
    )
    here, there = cpu_split()
    with pinned(here):
        for _ in range(rounds):
            messages = _messages(count)
            result.add("memory", await in_process(MemoryTransport(), messages, batch, concurrency))
            with tempfile.TemporaryDirectory(prefix="lms-bench-events-") as folder:
                log = LogTransport.from_state_dir(folder)
                result.add("log1", await in_process(log, messages, batch, concurrency))
            with tempfile.TemporaryDirectory(prefix="lms-bench-events-") as folder:
                both, alone = await two_processes(Path(folder), messages, batch, concurrency, there)
                result.add("log2", both)
                publish_only.add("log2", alone)
    met = result.median("log2") >= MIN_RATE
    verdict = "[green]met[/green]" if met else "[red]MISSED[/red]"
    result.notes.append(f"target: log across 2 processes >= {MIN_RATE:,.0f} events/s: {verdict}")
    result.notes.append(
        f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL; "
        f"consumer concurrency {concurrency}"
    )
    return [result, publish_only]


def main(argv: list[str] | None = None) -> int:
    """Run the events benchmark; 1 under ``--check`` when the target is missed."""
    cli = parser("events", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds (default 5, quick 2)")
    cli.add_argument("--events", type=int, help="events per variant per round")
    cli.add_argument("--batch", type=int, default=100, help="events per publish call")
    cli.add_argument("--concurrency", type=int, default=256, help="the consumer's handlers")
    opts: Any = cli.parse_args(sys.argv[1:] if argv is None else argv)
    rounds = opts.rounds or (2 if opts.quick else 5)
    count = opts.events or (5_000 if opts.quick else 20_000)
    console = Console()
    console.print(
        f"[bold]bench events[/bold]: Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}",
        highlight=False,
    )
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        results = runner.run(measure(rounds, count, opts.batch, opts.concurrency))
    for result in results:
        result.render(console)
    if opts.save:
        saved = save("events", results, rounds=rounds, events=count, concurrency=opts.concurrency)
        console.print(f"saved {saved}")
    met = results[0].median("log2") >= MIN_RATE
    return 1 if opts.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
