"""Resilience: retry + circuit breaker overhead per call, against tenacity and stamina.

What a successful call pays for being protected, the case every call is
in while the dependency is healthy. The callee is a no-op coroutine; each
variant awaits it ``--calls`` times and the bare ``await`` of the same
round is subtracted, leaving µs of overhead per call:

* ``plain``: a hand-written ``for``/``try`` retry loop (the floor);
* ``tenacity``: ``AsyncRetrying(stop=stop_after_attempt(3),
  retry=retry_if_exception_type(OSError), reraise=True)``, called as
  ``await retrying(fn)`` (the form its decorator uses);
* ``stamina``: ``@stamina.retry(on=OSError, attempts=3)`` (tenacity inside);
* ``retry``: ``Retry(on=OSError).call(fn, idempotent=True)``, ours alone;
* ``breaker``: ``CircuitBreaker.call(fn)``, ours alone (Resilience4j defaults);
* ``ours``: ``Resilience(retry=Retry(..., budget=RetryBudget(...)),
  breaker=CircuitBreaker(...)).call(fn, idempotent=True)``: retry, budget
  and breaker together, the subject.

Target: the overhead of ``ours`` is at most 0.15x the overhead of
``tenacity`` (a speed ratio of at least 1 / 0.15 = 6.67x in the table).
Variants run interleaved in rounds on one pinned CPU; ratios are the
median of per-round ratios.
"""

from __future__ import annotations

import asyncio
import gc
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import stamina
import tenacity
from rich.console import Console

from bench._load import loop_factory
from bench._procs import cpu_split, pinned
from bench._report import Comparison, Target, parser, save
from lms_shared.clock import SystemClock
from lms_shared.resilience import CircuitBreaker, Resilience, Retry, RetryBudget

MAX_COST_RATIO = 0.15  # ours / tenacity, in µs of overhead per call
NAMES = {
    "plain": "plain retry loop",
    "tenacity": "tenacity AsyncRetrying",
    "stamina": "stamina.retry",
    "retry": "lms-shared Retry",
    "breaker": "lms-shared CircuitBreaker",
    "ours": "lms-shared retry + budget + breaker",
}

Call = Callable[[], Awaitable[object]]


async def noop() -> int:
    return 1


def _variants() -> dict[str, Call]:
    clock = SystemClock()

    async def plain() -> object:
        for attempt in range(3):
            try:
                return await noop()
            except OSError:
                if attempt == 2:
                    raise
        return None

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(3),
        retry=tenacity.retry_if_exception_type(OSError),
        reraise=True,
    )

    async def with_tenacity() -> object:
        return await retrying(noop)

    with_stamina = stamina.retry(on=OSError, attempts=3)(noop)

    ours_retry = Retry(on=OSError, clock=clock)

    async def retry_only() -> object:
        return await ours_retry.call(noop, idempotent=True)

    ours_breaker = CircuitBreaker("bench", clock=clock)

    async def breaker_only() -> object:
        return await ours_breaker.call(noop)

    pipeline = Resilience(
        "bench",
        clock=clock,
        retry=Retry(on=OSError, clock=clock, budget=RetryBudget(clock=clock)),
        breaker=CircuitBreaker("bench", clock=clock),
    )

    async def ours() -> object:
        return await pipeline.call(noop, idempotent=True)

    return {
        "plain": plain,
        "tenacity": with_tenacity,
        "stamina": with_stamina,
        "retry": retry_only,
        "breaker": breaker_only,
        "ours": ours,
    }


async def _per_call(call: Call, count: int) -> float:
    """µs per call of ``count`` sequential awaits of ``call()``."""
    started = time.perf_counter()
    for _ in range(count):
        await call()
    return (time.perf_counter() - started) / count * 1e6


async def _bare(count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await noop()
    return (time.perf_counter() - started) / count * 1e6


async def measure(rounds: int, calls: int) -> list[Comparison]:
    """Overhead per call of every variant, and the absolute times."""
    overhead = Comparison(
        title="Overhead per successful call on a no-op coroutine (bare await subtracted)",
        unit="µs/call",
        higher_is_better=False,
        names=NAMES,
        baselines=("tenacity",),
        targets=(Target("ours", "tenacity", 1 / MAX_COST_RATIO),),
    )
    absolute = Comparison(
        title="Time per call, absolute",
        unit="µs/call",
        higher_is_better=False,
        names={"bare": "bare await", **NAMES},
        baselines=("bare",),
        gating=False,
    )
    variants = _variants()
    for call in variants.values():  # warm up: first-call caches, lazy imports
        await _per_call(call, max(calls // 10, 1))
    gc.collect()
    gc.freeze()
    slow = {"tenacity", "stamina"}  # ~100x slower: fewer calls keep rounds short
    try:
        for _ in range(rounds):
            bare = await _bare(calls)
            absolute.add("bare", bare)
            for key, call in variants.items():
                per_call = await _per_call(call, calls // 10 if key in slow else calls)
                absolute.add(key, per_call)
                overhead.add(key, max(per_call - bare, 1e-3))
    finally:
        gc.unfreeze()
    cost = overhead.median("ours") / overhead.median("tenacity")
    verdict = "met" if cost <= MAX_COST_RATIO else "MISSED"
    overhead.notes.append(
        f"overhead: ours {overhead.median('ours'):.2f} µs, tenacity "
        f"{overhead.median('tenacity'):.2f} µs, plain loop {overhead.median('plain'):.2f} µs"
    )
    overhead.notes.append(
        f"cost ratio ours / tenacity = {cost:.3f}x (target <= {MAX_COST_RATIO}x): {verdict}"
    )
    overhead.notes.append(f"{rounds} rounds x {calls:,} calls (tenacity, stamina: {calls // 10:,})")
    return [overhead, absolute]


def main(argv: list[str] | None = None) -> int:
    """Run the resilience benchmark; 1 under ``--check`` when the target is missed."""
    cli = parser("resilience", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds (default 7, quick 3)")
    cli.add_argument("--calls", type=int, help="calls per variant per round")
    opts: Any = cli.parse_args(sys.argv[1:] if argv is None else argv)
    rounds = opts.rounds or (3 if opts.quick else 7)
    calls = opts.calls or (20_000 if opts.quick else 200_000)
    console = Console()
    versions = ", ".join(f"{p} {version(p)}" for p in ("tenacity", "stamina"))
    console.print(
        f"[bold]bench resilience[/bold]: Python {platform.python_version()}, {versions}",
        highlight=False,
    )
    with pinned(cpu_split()[0]), asyncio.Runner(loop_factory=loop_factory()) as runner:
        results = runner.run(measure(rounds, calls))
    for result in results:
        result.render(console)
    if opts.save:
        console.print(f"saved {save('resilience', results, rounds=rounds, calls=calls)}")
    met = all(result.met() for result in results)
    return 1 if opts.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
