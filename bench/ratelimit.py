"""Rate limiting: checks per second, and the middleware's cost per request.

Three tables, measured in interleaved rounds in one process.

*Checks*: ``RateLimiter.hit`` per second with the memory storage (target:
at least 100,000 checks/s) and, beside it, with Redis (one Lua call per
check, sequential and 32 at a time), when Redis answers.

*Middleware, CPU*: µs of CPU per ``GET /ok`` through the full
``create_service`` stack driven in process, with the rate-limit
middleware removed ("off") and on with the memory storage. Target: on
>= 0.9x the speed of off.

*Middleware, wall time*: the same plus the Redis storage, in wall-clock
µs per request (Redis round trips are waiting, not CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import platform
import sys
import time
import uuid
from importlib.metadata import version
from typing import Any

from rich.console import Console

from bench._asgi import drive, http_scope, running
from bench._load import loop_factory
from bench._procs import cpu_split, pinned
from bench._report import Comparison, Target, parser
from lms_shared import create_service, load_settings
from lms_shared.clock import SystemClock
from lms_shared.http import RateLimitMiddleware
from lms_shared.observability import reset_logging
from lms_shared.ratelimit import MemoryStorage, Quota, RateLimiter, storage_from_url

REDIS_URL = os.environ.get("LMS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MIN_CHECKS = 100_000
SLICES = 10  # interleaved slices per round in the middleware tables
GENEROUS = "100000000/minute"  # every request admitted: the cost measured is the check
NAMES = {
    "off": "lms-shared, rate limit off",
    "memory": "lms-shared, rate limit (memory)",
    "redis": "lms-shared, rate limit (Redis)",
}


def _options(argv: list[str]) -> Any:
    cli = parser("ratelimit", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds per table (default 7, quick 3)")
    cli.add_argument("--checks", type=int, help="limiter checks per variant per round")
    cli.add_argument("--requests", type=int, help="requests per app per round")
    cli.add_argument("--no-redis", action="store_true", help="skip the Redis variants")
    return cli.parse_args(argv)


async def _redis_ok() -> bool:
    storage = storage_from_url(REDIS_URL)
    try:
        await storage.ping()
    except Exception:
        return False
    finally:
        await storage.stop()
    return True


async def _checks_per_second(limiter: RateLimiter, policy: Quota, count: int) -> float:
    keys = [f"ip:198.51.100.{i % 250}" for i in range(1000)]
    hit = limiter.hit
    started = time.perf_counter()
    for i in range(count):
        await hit(keys[i % 1000], policy)
    return count / (time.perf_counter() - started)


async def _concurrent_checks(limiter: RateLimiter, policy: Quota, count: int) -> float:
    async def worker(offset: int) -> None:
        for i in range(count // 32):
            await limiter.hit(f"ip:203.0.113.{(i + offset) % 250}", policy)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(32)))
    return (count // 32) * 32 / (time.perf_counter() - started)


async def checks(rounds: int, count: int, redis: bool) -> Comparison:
    """Checks per second of the limiter, memory and Redis."""
    policy = Quota.of(GENEROUS)
    clock = SystemClock()
    memory = RateLimiter(MemoryStorage(), clock=clock, namespace="bench")
    result = Comparison(
        title="Rate-limit checks per second (RateLimiter.hit, GCRA)",
        unit="checks/s",
        higher_is_better=True,
        names={
            "memory": "memory storage",
            "redis": "Redis, one at a time",
            "redis32": "Redis, 32 concurrent",
        },
        baselines=("memory",),
    )
    remote = None
    if redis:
        storage = storage_from_url(REDIS_URL, prefix=f"lms-bench:{uuid.uuid4().hex}:")
        remote = RateLimiter(storage, clock=clock, namespace="bench")
    try:
        for _ in range(rounds):
            result.add("memory", await _checks_per_second(memory, policy, count))
            if remote is not None:
                result.add("redis", await _checks_per_second(remote, policy, count // 20))
                result.add("redis32", await _concurrent_checks(remote, policy, count // 10))
    finally:
        if remote is not None:
            await remote.stop()
    met = result.median("memory") >= MIN_CHECKS
    verdict = "[green]met[/green]" if met else "[red]MISSED[/red]"
    result.notes.append(f"target: memory >= {MIN_CHECKS:,} checks/s: {verdict}")
    if remote is None:
        result.notes.append(f"Redis not measured (unreachable at {REDIS_URL} or --no-redis)")
    return result


def _app(variant: str) -> Any:
    overrides: dict[str, Any] = {"log_level": "error", "ratelimit_default": GENEROUS}
    if variant == "redis":
        overrides["ratelimit_url"] = f"{REDIS_URL}?prefix=lms-bench:{uuid.uuid4().hex}:"
    service = create_service("bench", "1.0.0", settings=load_settings(**overrides))

    async def ok() -> dict[str, bool]:
        return {"ok": True}

    service.router.get("/ok")(ok)
    if variant == "off":
        service.app.user_middleware = [
            m for m in service.app.user_middleware if m.cls is not RateLimitMiddleware
        ]
    return service.app


async def _wall(app: Any, scope: dict[str, Any], count: int) -> float:
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"status {message['status']}")

    started = time.perf_counter()
    for _ in range(count):
        await app({**scope, "state": {}}, receive, send)
    return (time.perf_counter() - started) / count * 1e6


async def middleware(rounds: int, requests: int, redis: bool) -> list[Comparison]:
    """µs per request without and with the rate-limit middleware."""
    variants = ["off", "memory", *(["redis"] if redis else [])]
    cpu = Comparison(
        title="Middleware, in process: CPU time per request",
        unit="µs/req",
        higher_is_better=False,
        names={k: NAMES[k] for k in ("off", "memory")},
        baselines=("off",),
        targets=(Target("memory", "off", 0.9),),
    )
    wall = Comparison(
        title="Middleware, in process: wall time per request",
        unit="µs/req",
        higher_is_better=False,
        names={k: NAMES[k] for k in variants},
        baselines=("off",),
    )
    scope = http_scope("/ok")
    apps = {variant: _app(variant) for variant in variants}
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():  # a service's lifespan runs once: keep them all up
            await stack.enter_async_context(running(app))
            await drive(app, scope, max(requests // 5, 1))  # warm up: build stacks, caches
        gc.collect()
        gc.freeze()  # the apps' long-lived objects: out of the collector's way for all variants
        block = max(requests // SLICES, 1)
        for _ in range(rounds):
            # each round alternates the variants in short slices, so a load change
            # on a shared machine hits every variant alike
            spent = dict.fromkeys(apps, 0.0)
            for _ in range(SLICES):
                for variant, app in apps.items():
                    if variant == "redis":
                        continue
                    seconds, failed = await drive(app, scope, block)
                    if failed:
                        raise RuntimeError(f"{variant}: {failed} responses were not 200")
                    spent[variant] += seconds
            for variant in ("off", "memory"):
                cpu.add(variant, spent[variant] / (block * SLICES) * 1e6)
            for variant, app in apps.items():
                count = requests // 10 if variant == "redis" else requests
                wall.add(variant, await _wall(app, scope, count))
    gc.unfreeze()
    added = cpu.median("memory") - cpu.median("off")
    cpu.notes.append(f"{rounds} rounds x {requests:,} requests; the limiter adds {added:.1f} µs")
    if not redis:
        wall.notes.append("Redis not measured (unreachable or --no-redis)")
    reset_logging()
    return [cpu, wall]


async def _all(opts: Any) -> list[Comparison]:
    rounds = opts.rounds or (3 if opts.quick else 7)
    count = opts.checks or (20_000 if opts.quick else 200_000)
    requests = opts.requests or (1_000 if opts.quick else 5_000)
    redis = not opts.no_redis and await _redis_ok()
    return [await checks(rounds, count, redis), *await middleware(rounds, requests, redis)]


def main(argv: list[str] | None = None) -> int:
    """Run the rate-limit benchmark; 1 under ``--check`` when a target is missed."""
    opts = _options(sys.argv[1:] if argv is None else argv)
    console = Console()
    versions = ", ".join(f"{p} {version(p)}" for p in ("fastapi", "starlette", "redis"))
    console.print(
        f"[bold]bench ratelimit[/bold]: Python {platform.python_version()}, {versions}",
        highlight=False,
    )
    with pinned(cpu_split()[0]), asyncio.Runner(loop_factory=loop_factory()) as runner:
        results = runner.run(_all(opts))
    for result in results:
        result.render(console)
    met = all(r.met() for r in results) and results[0].median("memory") >= MIN_CHECKS
    return 1 if opts.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
