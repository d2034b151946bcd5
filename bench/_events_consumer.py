"""A consumer of the events bench: ``python -m bench._events_consumer PATH COUNT CONCURRENCY``.

Subscribes to the bench's event type on the embedded log at ``PATH``,
prints ``ready``, acks ``COUNT`` deliveries, then prints the
``time.monotonic()`` of the last ack (system-wide on Linux, so the parent
compares it with its own) and exits.
"""

from __future__ import annotations

import asyncio
import sys
import time

from bench._load import loop_factory
from lms_shared.events import Delivery, SubscriptionSpec
from lms_shared.events._log import LogTransport

TYPE = "lms.bench.happened"


async def consume(path: str, count: int, concurrency: int) -> float:
    transport = LogTransport(path)
    await transport.start()
    done = asyncio.Event()
    seen = 0
    last = 0.0

    async def handle(delivery: Delivery) -> None:
        nonlocal seen, last
        await delivery.ack()
        seen += 1
        if seen >= count:
            last = time.monotonic()
            done.set()

    await transport.subscribe(SubscriptionSpec("bench", (TYPE,), concurrency=concurrency), handle)
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), 300)
    finally:
        await transport.stop()
    return last


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        print(runner.run(consume(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))), flush=True)
