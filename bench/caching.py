"""Caching: ns per cache hit and per write, BoundedCache vs dict code and cachetools.

Three tables, each measured in interleaved rounds in one process, the cost
of the bare loop subtracted:

*Verified-token hit*: 1,000 verified tokens resident, looked up in random
order. The code this tree had before (a dict of ``(deadline, principal,
kid)`` read inside ``TokenVerifier.cached``), the verifier of this tree
(``TokenVerifier.cached``, a :class:`~lms_shared.caching.BoundedCache`
inside), ``BoundedCache.get`` alone with per-entry expiry, and
``cachetools.TLRUCache`` (per-entry expiry) and ``TTLCache``. Target: the
verifier keeps >= 0.9x the speed of the old code (the hot path stays as
fast as before, within noise). ``TokenVerifier.cached`` *is* the cache's
``get`` now, so the gap between those two rows is the noise of the run.

*Hit without expiry* (proxy, IPv6 prefix, decision caches): an inline
``dict.get``, ``BoundedCache.get`` without a clock, ``cachetools.FIFOCache``
and ``LRUCache``, and a ``functools.lru_cache`` function for reference.

*Write into a full cache* (a miss, with eviction): the old dict code
(``pop(next(iter(d)))`` then store), ``BoundedCache.set`` with a ttl,
``cachetools.TTLCache`` and ``FIFOCache``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import cachetools
from rich.console import Console

from bench._procs import cpu_split, pinned
from bench._report import Comparison, Target, parser
from lms_shared.auth import (
    Principal,
    SigningKey,
    StaticKeys,
    TokenSigner,
    TokenVerifier,
    VerifierConfig,
)
from lms_shared.caching import BoundedCache
from lms_shared.clock import Clock, SystemClock

ISSUER = "https://identity.bench"
AUDIENCE = "courses"
RESIDENT = 1_000
LIFE = 3600.0  # nothing expires during a run

TOKEN_NAMES = {
    "old": "dict in TokenVerifier.cached (before)",
    "verifier": "TokenVerifier.cached (this tree)",
    "bounded": "BoundedCache.get, per-entry expiry",
    "tlru": "cachetools.TLRUCache.get",
    "ttl": "cachetools.TTLCache.get",
}
PLAIN_NAMES = {
    "dict": "dict.get, inline",
    "bounded": "BoundedCache.get, no expiry",
    "fifo": "cachetools.FIFOCache.get",
    "lru": "cachetools.LRUCache.get",
    "functools": "functools.lru_cache call",
}
WRITE_NAMES = {
    "dict": "dict, pop oldest + store (before)",
    "bounded": "BoundedCache.set, with ttl",
    "ttl": "cachetools.TTLCache set",
    "fifo": "cachetools.FIFOCache set",
}

Run = Callable[[Sequence[str]], int]


class _OldVerifier:
    """The verified-token hit path as this tree had it before BoundedCache."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.hits = 0
        self._cache: dict[str, tuple[float, Principal, str | None]] = {}

    def cached(self, token: str) -> Principal | None:
        entry = self._cache.get(token)
        if entry is not None and self.clock.monotonic() <= entry[0]:
            self.hits += 1
            return entry[1]
        return None


def _options(argv: list[str]) -> Any:
    cli = parser("caching", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds per table (default 7, quick 3)")
    cli.add_argument("--lookups", type=int, help="operations per variant per round")
    return cli.parse_args(argv)


def _timed(run: Run, keys: Sequence[str]) -> int:
    started = time.perf_counter_ns()
    run(keys)
    return time.perf_counter_ns() - started


def _empty(keys: Sequence[str]) -> int:
    for _ in keys:
        pass
    return 0


def _measure(result: Comparison, runs: dict[str, Run], keys: Sequence[str], rounds: int) -> None:
    for run in runs.values():
        run(keys[:1000])  # warm up
    gc.collect()
    for _ in range(rounds):
        loop = min(_timed(_empty, keys) for _ in range(3))
        for key, run in runs.items():
            result.add(key, max(_timed(run, keys) - loop, 0) / len(keys))


def _verified_tokens(clock: SystemClock) -> tuple[TokenVerifier, list[str]]:
    signer = TokenSigner(ISSUER, [SigningKey.generate("ES256")], clock=clock, ttl=LIFE)
    config = VerifierConfig(issuer=ISSUER, audiences=(AUDIENCE,), cache_size=10 * RESIDENT)
    verifier = TokenVerifier(config, StaticKeys(signer.verification_keys()), clock=clock)
    tokens = []
    for n in range(RESIDENT):
        who = Principal(subject=f"user-{n}", roles=frozenset({"student"}), tenant="northwind")
        tokens.append(signer.issue(who, audience=AUDIENCE))

    async def verify_all() -> None:
        for token in tokens:
            await verifier.verify(token)

    asyncio.run(verify_all())
    return verifier, tokens


def token_hits(rounds: int, lookups: int) -> Comparison:
    """ns per hit on a verified-token cache."""
    clock = SystemClock()
    verifier, tokens = _verified_tokens(clock)
    now = clock.monotonic()
    old = _OldVerifier(clock)
    bounded: BoundedCache[str, tuple[Principal, str | None]] = BoundedCache(
        10 * RESIDENT, clock=clock
    )
    tlru: cachetools.TLRUCache[str, tuple[float, Principal]] = cachetools.TLRUCache(
        10 * RESIDENT, ttu=lambda _k, v, _now: v[0], timer=clock.monotonic
    )
    ttl: cachetools.TTLCache[str, Principal] = cachetools.TTLCache(
        10 * RESIDENT, ttl=LIFE, timer=clock.monotonic
    )
    for token in tokens:
        principal = verifier.cached(token)
        if principal is None:
            raise RuntimeError("the verifier did not cache a token")
        old._cache[token] = (now + LIFE, principal, None)
        bounded.set(token, (principal, None), ttl=LIFE)
        tlru[token] = (now + LIFE, principal)
        ttl[token] = principal

    def run_old(keys: Sequence[str]) -> int:
        cached = old.cached
        for key in keys:
            cached(key)
        return 0

    def run_verifier(keys: Sequence[str]) -> int:
        cached = verifier.cached
        for key in keys:
            cached(key)
        return 0

    def run_bounded(keys: Sequence[str]) -> int:
        get = bounded.get
        for key in keys:
            get(key)
        return 0

    def run_tlru(keys: Sequence[str]) -> int:
        get = tlru.get
        for key in keys:
            get(key)
        return 0

    def run_ttl(keys: Sequence[str]) -> int:
        get = ttl.get
        for key in keys:
            get(key)
        return 0

    result = Comparison(
        title=f"Verified-token cache hit ({RESIDENT:,} tokens resident, random order)",
        unit="ns/get",
        higher_is_better=False,
        names=TOKEN_NAMES,
        baselines=("old",),
        targets=(Target("verifier", "old", 0.9),),
    )
    keys = random.Random(7).choices(tokens, k=lookups)
    runs: dict[str, Run] = {
        "old": run_old,
        "verifier": run_verifier,
        "bounded": run_bounded,
        "tlru": run_tlru,
        "ttl": run_ttl,
    }
    _measure(result, runs, keys, rounds)
    probe = keys[0]
    found = (old.cached(probe), verifier.cached(probe), bounded.get(probe), tlru.get(probe))
    if any(value is None for value in found) or ttl.get(probe) is None:
        raise RuntimeError("a variant did not hit")
    result.notes.append(
        f"{rounds} rounds x {lookups:,} lookups; tokens are ES256, ~{len(tokens[0])} chars"
    )
    return result


def plain_hits(rounds: int, lookups: int) -> Comparison:
    """ns per hit on a cache without expiry."""
    keys_resident = [f"2001:db8:{n:x}::{n % 97:x}" for n in range(RESIDENT)]
    plain: dict[str, str] = {}
    bounded: BoundedCache[str, str] = BoundedCache(4 * RESIDENT)
    fifo: cachetools.FIFOCache[str, str] = cachetools.FIFOCache(4 * RESIDENT)
    lru: cachetools.LRUCache[str, str] = cachetools.LRUCache(4 * RESIDENT)

    @functools.lru_cache(maxsize=4 * RESIDENT)
    def memo(key: str) -> str:
        return key

    for key in keys_resident:
        plain[key] = bounded_value = key
        bounded.set(key, bounded_value)
        fifo[key] = lru[key] = key
        memo(key)

    def run_dict(keys: Sequence[str]) -> int:
        for key in keys:
            plain.get(key)
        return 0

    def run_bounded(keys: Sequence[str]) -> int:
        get = bounded.get
        for key in keys:
            get(key)
        return 0

    def run_fifo(keys: Sequence[str]) -> int:
        get = fifo.get
        for key in keys:
            get(key)
        return 0

    def run_lru(keys: Sequence[str]) -> int:
        get = lru.get
        for key in keys:
            get(key)
        return 0

    def run_memo(keys: Sequence[str]) -> int:
        for key in keys:
            memo(key)
        return 0

    result = Comparison(
        title=f"Cache hit without expiry ({RESIDENT:,} keys resident, random order)",
        unit="ns/get",
        higher_is_better=False,
        names=PLAIN_NAMES,
        baselines=("dict",),
    )
    keys = random.Random(11).choices(keys_resident, k=lookups)
    runs: dict[str, Run] = {
        "dict": run_dict,
        "bounded": run_bounded,
        "fifo": run_fifo,
        "lru": run_lru,
        "functools": run_memo,
    }
    _measure(result, runs, keys, rounds)
    result.notes.append(f"{rounds} rounds x {lookups:,} lookups")
    return result


def writes(rounds: int, lookups: int) -> Comparison:
    """ns per write of a new key into a full cache."""
    clock = SystemClock()
    size = RESIDENT
    fresh = [f"198.51.{n // 256 % 256}.{n % 256}/{n}" for n in range(lookups)]
    plain: dict[str, tuple[float, str]] = {}
    bounded: BoundedCache[str, str] = BoundedCache(size, ttl=LIFE, clock=clock)
    ttl: cachetools.TTLCache[str, str] = cachetools.TTLCache(size, ttl=LIFE, timer=clock.monotonic)
    fifo: cachetools.FIFOCache[str, str] = cachetools.FIFOCache(size)

    def run_dict(keys: Sequence[str]) -> int:
        for key in keys:
            if len(plain) >= size:
                plain.pop(next(iter(plain)), None)
            plain[key] = (clock.monotonic() + LIFE, key)
        return 0

    def run_bounded(keys: Sequence[str]) -> int:
        put = bounded.set
        for key in keys:
            put(key, key)
        return 0

    def run_ttl(keys: Sequence[str]) -> int:
        for key in keys:
            ttl[key] = key
        return 0

    def run_fifo(keys: Sequence[str]) -> int:
        for key in keys:
            fifo[key] = key
        return 0

    runs: dict[str, Run] = {
        "dict": run_dict,
        "bounded": run_bounded,
        "ttl": run_ttl,
        "fifo": run_fifo,
    }
    for run in runs.values():
        run(fresh[-size:])  # full from the start: every measured write evicts
    result = Comparison(
        title=f"Write of a new key into a full cache ({size:,} entries)",
        unit="ns/set",
        higher_is_better=False,
        names=WRITE_NAMES,
        baselines=("dict",),
    )
    _measure(result, runs, fresh, rounds)
    if not len(plain) == len(bounded) == len(ttl) == len(fifo) == size:
        raise RuntimeError("a cache grew past its bound")
    result.notes.append(f"{rounds} rounds x {lookups:,} writes")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the caching benchmark; 1 under ``--check`` when a target is missed."""
    opts = _options(sys.argv[1:] if argv is None else argv)
    rounds = opts.rounds or (3 if opts.quick else 7)
    lookups = opts.lookups or (50_000 if opts.quick else 200_000)
    console = Console()
    console.print(
        f"[bold]bench caching[/bold]: Python {platform.python_version()},"
        f" cachetools {version('cachetools')}",
        highlight=False,
    )
    with pinned(cpu_split()[0]):
        results = [
            token_hits(rounds, lookups),
            plain_hits(rounds, lookups),
            writes(rounds, lookups),
        ]
    for result in results:
        result.render(console)
    return 1 if opts.check and not all(r.met() for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
