"""Discovery: balancer picks per second, and what the facade's cache saves.

Two tables, measured in interleaved rounds in one process.

*Picks*: picks per second over a pool of 10 instances, each pick with its
``on_start``/``on_end`` feedback, for every balancer and the default stack
(outlier ejection, zone preference, consistent hash, peak-EWMA), beside
the bare ``random.choice`` a hand-written client would use.

*Lookups*: ``Discovery.resolve`` from the cache (default balancer) against
a fresh registry lookup per call on the local SQLite registry, and, when
``LMS_BENCH_ETCD_URL`` names an etcd, on etcd.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from bench._report import Comparison, parser
from lms_shared.clock import SystemClock
from lms_shared.discovery import (
    Balancer,
    ConsistentHash,
    Discovery,
    DiscoveryConfig,
    Instance,
    LeastOutstanding,
    PowerOfTwoEWMA,
    Random,
    RoundRobin,
    default_balancer,
    registry_from_url,
)

ETCD_URL = os.environ.get("LMS_BENCH_ETCD_URL")
POOL = [Instance("courses", f"c{i}", f"10.0.0.{i + 1}", 8000, zone="eu-1") for i in range(10)]


def _options(argv: list[str]) -> Any:
    cli = parser("discovery", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds per table (default 7, quick 3)")
    cli.add_argument("--picks", type=int, help="picks per variant per round")
    return cli.parse_args(argv)


def _per_second(count: int, step: Callable[[int], None]) -> float:
    started = time.perf_counter()
    for n in range(count):
        step(n)
    return count / (time.perf_counter() - started)


def _with_feedback(balancer: Balancer, keyed: bool) -> Callable[[int], None]:
    keys = [f"course-{n}" for n in range(1000)]

    def step(n: int) -> None:
        chosen = balancer.pick(POOL, key=keys[n % 1000] if keyed else None)
        balancer.on_start(chosen)
        balancer.on_end(chosen, 0.002, True)

    return step


def picks(rounds: int, count: int) -> Comparison:
    """Picks per second per balancer, against bare ``random.choice``."""
    clock = SystemClock()
    rng = random.Random(1)
    result = Comparison(
        title="Picks (10 instances, with feedback)",
        unit="picks/s",
        higher_is_better=True,
        names={
            "bare": "bare random.choice",
            "round_robin": "RoundRobin",
            "random": "Random",
            "least": "LeastOutstanding",
            "p2c": "PowerOfTwoEWMA",
            "hash": "ConsistentHash (key)",
            "stack": "default stack (no key)",
            "stack_key": "default stack (key)",
        },
        baselines=("bare",),
    )
    variants: dict[str, Callable[[int], None]] = {
        "bare": lambda n: rng.choice(POOL),
        "round_robin": _with_feedback(RoundRobin(), False),
        "random": _with_feedback(Random(random.Random(1)), False),
        "least": _with_feedback(LeastOutstanding(random.Random(1)), False),
        "p2c": _with_feedback(PowerOfTwoEWMA(clock=clock, rng=random.Random(1)), False),
        "hash": _with_feedback(ConsistentHash(), True),
        "stack": _with_feedback(default_balancer(DiscoveryConfig(zone="eu-1"), clock=clock), False),
        "stack_key": _with_feedback(
            default_balancer(DiscoveryConfig(zone="eu-1"), clock=clock), True
        ),
    }
    for _ in range(rounds):
        for key, step in variants.items():
            result.add(key, _per_second(count, step))
    return result


async def lookups(rounds: int, count: int) -> Comparison:
    """Cached resolve against a registry round trip per call."""
    clock = SystemClock()
    result = Comparison(
        title="Resolve: cached vs a registry lookup per call",
        unit="calls/s",
        higher_is_better=True,
        names={
            "cached": "Discovery.resolve (cache)",
            "local": "LocalRegistry.lookup + pick",
            "etcd": "EtcdRegistry.lookup + pick",
        },
        baselines=("local",),
    )
    with tempfile.TemporaryDirectory() as folder:
        local = registry_from_url(None, clock=clock, state_dir=Path(folder))
        registries = {"local": local}
        if ETCD_URL:
            registries["etcd"] = registry_from_url(ETCD_URL, clock=clock, state_dir=Path(folder))
        facade = Discovery(local, clock=clock)
        await facade.start()
        for registry in registries.values():
            if registry is not local:
                await registry.start()
        registrations = [
            await registry.register(instance, ttl=60)
            for registry in registries.values()
            for instance in POOL
        ]
        balancer = RoundRobin()
        try:
            for _ in range(rounds):
                started = time.perf_counter()
                for _ in range(count):
                    await facade.resolve("courses")
                result.add("cached", count / (time.perf_counter() - started))
                for key, registry in registries.items():
                    slow = max(1, count // 100)
                    started = time.perf_counter()
                    for _ in range(slow):
                        balancer.pick(await registry.lookup("courses"))
                    result.add(key, slow / (time.perf_counter() - started))
        finally:
            for registration in registrations:
                await registration.close()
            for registry in registries.values():
                if registry is not local:
                    await registry.stop()
            await facade.stop()
    result.notes.append("the cache is kept fresh by the registry's watch; lookups hit the store")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the discovery benchmark (no targets: it reports costs)."""
    opts = _options(sys.argv[1:] if argv is None else argv)
    rounds = opts.rounds or (3 if opts.quick else 7)
    count = opts.picks or (20_000 if opts.quick else 100_000)
    console = Console()
    console.print(f"[bold]bench discovery[/bold]: Python {platform.python_version()}")
    results = [picks(rounds, count), asyncio.run(lookups(rounds, count // 5))]
    for result in results:
        result.render(console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
