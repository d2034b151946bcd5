"""BoundedCache: the size bound, first-in first-out eviction, expiry on an injected clock."""

from __future__ import annotations

import asyncio
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lms_shared.caching import BoundedCache
from lms_shared.clock import SystemClock
from lms_shared.testing import ManualClock

# --- size and eviction order ---------------------------------------------------------


def test_the_cache_never_holds_more_than_maxsize_entries() -> None:
    cache: BoundedCache[int, str] = BoundedCache(3)
    for n in range(10):
        cache.set(n, f"v{n}")
        assert len(cache) == min(n + 1, 3)
    assert [cache.get(n) for n in range(10)] == [None] * 7 + ["v7", "v8", "v9"]


def test_the_oldest_write_goes_first_and_reads_do_not_protect_an_entry() -> None:
    cache: BoundedCache[str, int] = BoundedCache(3)
    for key in "abc":
        cache.set(key, ord(key))
    assert cache.get("a") == ord("a")  # a read does not make "a" young again
    cache.set("d", 4)
    assert cache.get("a") is None
    assert (cache.get("b"), cache.get("c"), cache.get("d")) == (ord("b"), ord("c"), 4)


def test_writing_a_key_again_replaces_it_and_makes_it_the_newest() -> None:
    cache: BoundedCache[str, int] = BoundedCache(3)
    for key in "abc":
        cache.set(key, 1)
    cache.set("a", 2)
    assert len(cache) == 3
    cache.set("d", 1)
    assert cache.get("a") == 2
    assert cache.get("b") is None


def test_maxsize_zero_keeps_nothing() -> None:
    cache: BoundedCache[str, int] = BoundedCache(0)
    cache.set("a", 1)
    assert cache.get("a") is None
    assert len(cache) == 0


@pytest.mark.parametrize("maxsize", [-1, 1.5, True, "3"])
def test_a_bad_maxsize_is_refused(maxsize: object) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        BoundedCache(maxsize)  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [-1.0, math.nan])
def test_a_bad_ttl_is_refused(ttl: float, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="ttl"):
        BoundedCache(10, ttl=ttl, clock=clock)


def test_expiry_needs_a_clock() -> None:
    with pytest.raises(ValueError, match="needs a clock"):
        BoundedCache(10, ttl=5.0)
    cache: BoundedCache[str, int] = BoundedCache(10)
    with pytest.raises(ValueError, match="without a clock"):
        cache.set("a", 1, ttl=5.0)
    assert cache.get("a") is None
    cache.set("a", 1, ttl=math.inf)  # never expiring needs no clock
    assert cache.get("a") == 1


# --- expiry ------------------------------------------------------------------------------


def test_a_cache_on_the_real_clock_serves_live_entries() -> None:
    cache: BoundedCache[str, int] = BoundedCache(10, ttl=3600.0, clock=SystemClock())
    cache.set("a", 1)
    cache.set("b", 2, ttl=0)
    assert (cache.get("a"), cache.get("b")) == (1, None)


async def test_an_entry_lives_ttl_seconds_from_its_write(clock: ManualClock) -> None:
    cache: BoundedCache[str, int] = BoundedCache(10, ttl=5.0, clock=clock)
    cache.set("a", 1)
    await clock.advance(4.999)
    assert cache.get("a") == 1
    await clock.advance(0.001)  # gone at its deadline exactly
    assert cache.get("a") is None
    assert len(cache) == 0  # the read dropped it


async def test_writing_again_restarts_the_ttl(clock: ManualClock) -> None:
    cache: BoundedCache[str, int] = BoundedCache(10, ttl=5.0, clock=clock)
    cache.set("a", 1)
    await clock.advance(4)
    cache.set("a", 2)
    await clock.advance(4)
    assert cache.get("a") == 2
    await clock.advance(1)
    assert cache.get("a") is None


async def test_an_entry_ttl_replaces_the_cache_ttl(clock: ManualClock) -> None:
    cache: BoundedCache[str, int] = BoundedCache(10, ttl=5.0, clock=clock)
    cache.set("short", 1, ttl=1.0)
    cache.set("long", 2, ttl=60.0)
    cache.set("forever", 3, ttl=math.inf)
    cache.set("default", 4)
    await clock.advance(1)
    assert cache.get("short") is None
    await clock.advance(4)
    assert cache.get("default") is None
    assert cache.get("long") == 2
    await clock.advance(55)
    assert cache.get("long") is None
    await clock.advance(10**9)
    assert cache.get("forever") == 3


async def test_per_entry_expiry_without_a_cache_ttl(clock: ManualClock) -> None:
    cache: BoundedCache[str, str] = BoundedCache(10, clock=clock)  # a JWT cache: exp per token
    cache.set("token", "principal", ttl=30.0)
    cache.set("plain", "value")  # no ttl anywhere: never expires
    await clock.advance(30)
    assert cache.get("token") is None
    assert cache.get("plain") == "value"


@pytest.mark.parametrize("ttl", [0.0, -3.0, math.nan])
def test_an_entry_that_is_already_dead_is_not_stored_and_forgets_the_key(
    ttl: float, clock: ManualClock
) -> None:
    cache: BoundedCache[str, int] = BoundedCache(10, clock=clock)
    cache.set("a", 1)
    cache.set("a", 2, ttl=ttl)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_a_cache_ttl_of_zero_keeps_nothing_alive(clock: ManualClock) -> None:
    cache: BoundedCache[str, int] = BoundedCache(10, ttl=0.0, clock=clock)
    cache.set("a", 1)
    assert cache.get("a") is None


async def test_expired_entries_count_until_dropped_and_make_room_first_in_line(
    clock: ManualClock,
) -> None:
    cache: BoundedCache[int, int] = BoundedCache(3, ttl=5.0, clock=clock)
    for n in range(3):
        cache.set(n, n)
    await clock.advance(5)
    assert len(cache) == 3  # nobody read them yet
    cache.set(10, 10)
    assert len(cache) == 3
    assert cache.get(10) == 10
    assert [cache.get(n) for n in range(3)] == [None, None, None]
    assert len(cache) == 1


# --- pop, discard_where, clear --------------------------------------------------------------


async def test_pop_returns_the_live_value_and_removes_it(clock: ManualClock) -> None:
    cache: BoundedCache[str, int] = BoundedCache(10, ttl=5.0, clock=clock)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.pop("a") == 1
    assert cache.get("a") is None
    assert cache.pop("a") is None
    await clock.advance(5)
    assert cache.pop("b") is None  # expired: removed, but no value
    assert len(cache) == 0


def test_discard_where_removes_the_matching_entries() -> None:
    cache: BoundedCache[str, tuple[str, str]] = BoundedCache(10)
    for n in range(6):
        cache.set(f"t{n}", ("principal", "old-kid" if n % 2 else "new-kid"))
    assert cache.discard_where(lambda _token, value: value[1] == "old-kid") == 3
    assert sorted(k for k in (f"t{n}" for n in range(6)) if cache.get(k)) == ["t0", "t2", "t4"]
    assert cache.discard_where(lambda _token, _value: False) == 0


def test_discard_where_keeps_an_entry_written_again_while_it_ran() -> None:
    cache: BoundedCache[str, int] = BoundedCache(10)
    cache.set("a", 1)
    cache.set("b", 1)

    def rewrite_a(key: str, _value: int) -> bool:
        if key == "a":
            cache.set("a", 2)  # the predicate may use the cache: no deadlock
        return True

    assert cache.discard_where(rewrite_a) == 1
    assert cache.get("a") == 2
    assert cache.get("b") is None


def test_clear_and_repr() -> None:
    cache: BoundedCache[str, int] = BoundedCache(10)
    cache.set("a", 1)
    assert repr(cache) == "BoundedCache(entries=1, maxsize=10, ttl=None)"
    cache.clear()
    assert len(cache) == 0
    assert cache.get("a") is None


def test_threads_sharing_a_cache_never_break_it_or_its_bound() -> None:
    cache: BoundedCache[int, int] = BoundedCache(64)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(offset: int) -> None:
        try:
            start.wait(timeout=10)
            for n in range(20_000):
                key = (n * 7 + offset) % 500
                if cache.get(key) is None:
                    cache.set(key, key)
                if n % 97 == 0:
                    cache.pop(key)
                if n % 1009 == 0:
                    cache.discard_where(lambda k, _v: k % 3 == offset)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)
    assert len(cache) <= 64
    assert all(cache.get(k) in (None, k) for k in range(500))


# --- against a reference model ---------------------------------------------------------


class _Model:
    """The documented rules, written the plain way (an OrderedDict of deadlines)."""

    def __init__(self, maxsize: int, ttl: float | None) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self.now = 0.0
        self.entries: OrderedDict[int, tuple[float, int]] = OrderedDict()

    def get(self, key: int) -> int | None:
        if key not in self.entries:
            return None
        deadline, value = self.entries[key]
        if self.now >= deadline:
            del self.entries[key]
            return None
        return value

    def set(self, key: int, value: int, ttl: float | None) -> None:
        life = self.ttl if ttl is None else ttl
        deadline = math.inf if life is None else self.now + life
        if life is not None and life <= 0:
            self.entries.pop(key, None)
            return
        if self.maxsize == 0:
            return
        if key in self.entries:
            del self.entries[key]
        elif len(self.entries) >= self.maxsize:
            self.entries.popitem(last=False)
        self.entries[key] = (deadline, value)

    def pop(self, key: int) -> int | None:
        value = self.get(key)
        self.entries.pop(key, None)
        return value

    def discard_odd(self) -> int:
        doomed = [k for k, (_, v) in self.entries.items() if v % 2]
        for key in doomed:
            del self.entries[key]
        return len(doomed)


KEYS = st.integers(0, 7)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, st.integers(0, 99), st.sampled_from([None, 0, 1, 3, 10])),
        st.tuples(st.just("get"), KEYS),
        st.tuples(st.just("pop"), KEYS),
        st.tuples(st.just("advance"), st.integers(0, 4)),
        st.tuples(st.just("discard_odd")),
        st.tuples(st.just("clear")),
    ),
    max_size=60,
)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop:
        yield loop


@settings(max_examples=150, deadline=None)
@given(maxsize=st.integers(0, 5), ttl=st.sampled_from([None, 2.0, 5.0]), operations=OPERATIONS)
def test_the_cache_behaves_like_the_reference_model(
    runner: asyncio.Runner,
    maxsize: int,
    ttl: float | None,
    operations: list[tuple[object, ...]],
) -> None:
    clock = ManualClock()
    cache: BoundedCache[int, int] = BoundedCache(maxsize, ttl=ttl, clock=clock)
    model = _Model(maxsize, ttl)
    for operation in operations:
        match operation:
            case ("set", int(key), int(value), entry_ttl):
                cache.set(key, value, ttl=entry_ttl)  # type: ignore[arg-type]
                model.set(key, value, entry_ttl)  # type: ignore[arg-type]
            case ("get", int(key)):
                assert cache.get(key) == model.get(key)
            case ("pop", int(key)):
                assert cache.pop(key) == model.pop(key)
            case ("advance", int(seconds)):
                runner.run(clock.advance(seconds))
                model.now += seconds
            case ("discard_odd",):
                assert cache.discard_where(lambda _k, v: v % 2 == 1) == model.discard_odd()
            case _:
                cache.clear()
                model.entries.clear()
        assert len(cache) == len(model.entries) <= maxsize
    assert [cache.get(k) for k in range(8)] == [model.get(k) for k in range(8)]
