"""A consumer process of the embedded log, for the multi-process tests and the bench.

``python tests/events/_log_worker.py PATH GROUP TYPE OUT [options]`` subscribes
to ``TYPE`` in ``GROUP`` on the log at ``PATH``, prints ``ready`` once
subscribed, and appends ``<event id> <attempt>`` to ``OUT`` for each
delivery (flushed, so the test can read it at any moment), then:

* ``--mode ack``: acks it (after ``--pause`` seconds, to spread the load);
* ``--mode hold``: never settles it (the test kills this process mid-lease).

It exits on SIGTERM (stopping the transport) or after ``--deadline``
seconds, whichever comes first, so a failed test never leaves it behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from lms_shared.events import Delivery, SubscriptionSpec
from lms_shared.events._log import LogTransport


async def main(opts: argparse.Namespace) -> int:
    transport = LogTransport(opts.path, poll_max=0.05)
    await transport.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    with open(opts.out, "a", buffering=1) as out:  # noqa: ASYNC230 (line writes)

        async def handle(delivery: Delivery) -> None:
            out.write(f"{delivery.message.id} {delivery.attempt}\n")
            if opts.mode == "hold":
                await asyncio.Event().wait()
            if opts.pause:
                await asyncio.sleep(opts.pause)
            await delivery.ack()

        spec = SubscriptionSpec(
            opts.group, (opts.type,), concurrency=opts.concurrency, ack_wait=opts.ack_wait
        )
        await transport.subscribe(spec, handle)
        print("ready", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), opts.deadline)
        await transport.stop()
    return 0


if __name__ == "__main__":
    cli = argparse.ArgumentParser()
    cli.add_argument("path")
    cli.add_argument("group")
    cli.add_argument("type")
    cli.add_argument("out")
    cli.add_argument("--mode", choices=("ack", "hold"), default="ack")
    cli.add_argument("--concurrency", type=int, default=16)
    cli.add_argument("--ack-wait", type=float, default=30.0)
    cli.add_argument("--pause", type=float, default=0.0)
    cli.add_argument("--deadline", type=float, default=120.0)
    sys.exit(asyncio.run(main(cli.parse_args())))
