"""Balancers: each policy's choices, the wrappers, and outlier ejection on the clock."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from lms_shared.discovery import (
    Balancer,
    ConsistentHash,
    Instance,
    LeastOutstanding,
    OutlierEjection,
    PowerOfTwoEWMA,
    Random,
    RoundRobin,
    VersionCanary,
    ZonePreference,
)
from lms_shared.testing import ManualClock


def pool(n: int, **fields: object) -> list[Instance]:
    return [Instance("courses", f"c{i}", f"127.0.0.{i + 10}", 8000, **fields) for i in range(n)]  # type: ignore[arg-type]


def test_round_robin_takes_each_instance_in_turn() -> None:
    a, b, c = pool(3)
    balancer = RoundRobin()
    assert [balancer.pick([a, b, c]).id for _ in range(6)] == ["c0", "c1", "c2"] * 2


def test_every_balancer_refuses_an_empty_pool() -> None:
    clock = ManualClock()
    balancers: list[Balancer] = [
        RoundRobin(),
        Random(random.Random(1)),
        LeastOutstanding(random.Random(1)),
        PowerOfTwoEWMA(clock=clock),
        ConsistentHash(),
        ZonePreference(RoundRobin(), zone="eu-1"),
        VersionCanary(RoundRobin(), version="2", share=0.5),
        OutlierEjection(RoundRobin(), clock=clock),
    ]
    for balancer in balancers:
        assert isinstance(balancer, Balancer)
        with pytest.raises(ValueError, match="no instances"):
            balancer.pick([])


def test_random_spreads_evenly() -> None:
    instances = pool(4)
    balancer = Random(random.Random(42))
    spread = Counter(balancer.pick(instances).id for _ in range(4000))
    assert set(spread) == {"c0", "c1", "c2", "c3"}
    assert all(800 < n < 1200 for n in spread.values())


def test_random_is_deterministic_under_a_seed() -> None:
    instances = pool(5)
    first, second = Random(random.Random(3)), Random(random.Random(3))
    assert [first.pick(instances).id for _ in range(30)] == [
        second.pick(instances).id for _ in range(30)
    ]


def test_least_outstanding_prefers_the_idlest_instance() -> None:
    a, b, c = pool(3)
    balancer = LeastOutstanding(random.Random(0))
    for _ in range(3):
        balancer.on_start(a)
    balancer.on_start(b)
    assert balancer.pick([a, b, c]) == c
    balancer.on_start(c)
    balancer.on_start(c)
    assert balancer.pick([a, b, c]) == b
    for _ in range(3):
        balancer.on_end(a, 0.01, True)
    assert balancer.outstanding(a) == 0
    assert balancer.pick([a, b, c]) == a
    balancer.on_end(a, 0.01, True)  # an end without a start never goes negative
    assert balancer.outstanding(a) == 0


async def test_power_of_two_prefers_the_faster_instance_and_forgets_on_the_clock() -> None:
    clock = ManualClock()
    fast, slow = pool(2)
    balancer = PowerOfTwoEWMA(clock=clock, rng=random.Random(5), decay=10.0)
    balancer.on_start(slow)
    balancer.on_end(slow, 2.0, True)
    balancer.on_start(fast)
    balancer.on_end(fast, 0.01, True)
    assert balancer.latency(slow) == pytest.approx(2.0)
    assert {balancer.pick([fast, slow]).id for _ in range(20)} == {"c0"}
    # a slower sample replaces the estimate at once (peak EWMA)
    balancer.on_end(fast, 0.5, True)
    assert balancer.latency(fast) == pytest.approx(0.5)
    # without samples the estimates decay: e^-1 after one time constant
    await clock.advance(10.0)
    assert balancer.latency(slow) == pytest.approx(2.0 * 0.36788, rel=1e-3)
    # a faster sample is folded in with the weight of the time since the last one
    balancer.on_end(slow, 0.1, True)
    assert balancer.latency(slow) == pytest.approx(2.0 * 0.36788 + 0.1 * 0.63212, rel=1e-3)


def test_power_of_two_counts_calls_in_flight_into_the_cost() -> None:
    clock = ManualClock()
    a, b = pool(2)
    balancer = PowerOfTwoEWMA(clock=clock, rng=random.Random(1), default_latency=0.1)
    assert balancer.cost(a) == pytest.approx(0.1)
    for _ in range(4):
        balancer.on_start(a)
    assert balancer.cost(a) == pytest.approx(0.5)
    assert {balancer.pick([a, b]).id for _ in range(10)} == {"c1"}
    assert balancer.pick([a]) == a


def test_consistent_hash_sends_a_key_to_one_instance() -> None:
    instances = pool(5)
    balancer = ConsistentHash()
    owners = {balancer.pick(instances, key="course-42").id for _ in range(20)}
    assert len(owners) == 1
    # order of the pool does not matter
    assert balancer.pick(list(reversed(instances)), key="course-42").id in owners


def test_consistent_hash_moves_only_the_removed_instances_keys() -> None:
    instances = pool(10)
    balancer = ConsistentHash()
    keys = [f"user-{n}" for n in range(5000)]
    before = {k: balancer.pick(instances, key=k).id for k in keys}
    spread = Counter(before.values())
    assert all(300 < n < 700 for n in spread.values()), spread
    gone = instances[3]
    after = {k: balancer.pick([i for i in instances if i != gone], key=k).id for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(before[k] == gone.id for k in moved)  # only the removed instance's keys move
    assert 0.05 < len(moved) / len(keys) < 0.15  # ~1/n of them
    # and adding it back restores the original owners
    assert {k: balancer.pick(instances, key=k).id for k in keys} == before


def test_consistent_hash_without_a_key_uses_its_fallback() -> None:
    a, b = pool(2)
    fallback = LeastOutstanding(random.Random(0))
    balancer = ConsistentHash(fallback=fallback)
    balancer.on_start(a)
    assert balancer.pick([a, b]) == b
    balancer.on_end(a, 0.1, True)
    assert fallback.outstanding(a) == 0
    with pytest.raises(ValueError, match="vnodes"):
        ConsistentHash(vnodes=0)


def test_zone_preference_keeps_calls_local_and_falls_back_when_none_are() -> None:
    local = pool(2, zone="eu-1")
    remote = [Instance("courses", "r0", "127.0.1.1", 8000, zone="us-1")]
    balancer = ZonePreference(RoundRobin(), zone="eu-1")
    assert {balancer.pick(local + remote).id for _ in range(10)} == {"c0", "c1"}
    assert balancer.pick(remote).id == "r0"
    anywhere = ZonePreference(RoundRobin(), zone=None)
    assert {anywhere.pick(local + remote).id for _ in range(3)} == {"c0", "c1", "r0"}


def test_version_canary_sends_its_share_to_the_canary_version() -> None:
    stable = pool(3, version="1.4.0")
    canary = [Instance("courses", "k0", "127.0.2.1", 8000, version="1.5.0")]
    balancer = VersionCanary(RoundRobin(), version="1.5.0", share=0.1, rng=random.Random(11))
    picks = Counter(balancer.pick(stable + canary).version for _ in range(10_000))
    assert 900 < picks["1.5.0"] < 1100
    again = VersionCanary(RoundRobin(), version="1.5.0", share=0.1, rng=random.Random(11))
    first = VersionCanary(RoundRobin(), version="1.5.0", share=0.1, rng=random.Random(11))
    assert [again.pick(stable + canary).id for _ in range(100)] == [
        first.pick(stable + canary).id for _ in range(100)
    ]
    pinned = VersionCanary(RoundRobin(), version="1.5.0", share=1.0)
    assert {pinned.pick(stable + canary).id for _ in range(10)} == {"k0"}
    never = VersionCanary(RoundRobin(), version="1.5.0", share=0.0)
    assert "k0" not in {never.pick(stable + canary).id for _ in range(10)}
    # one group only: it gets every call
    assert VersionCanary(RoundRobin(), version="9", share=0.5).pick(stable).version == "1.4.0"
    with pytest.raises(ValueError, match="share"):
        VersionCanary(RoundRobin(), version="1", share=1.5)


async def test_a_failing_instance_is_ejected_and_traffic_moves_to_the_other() -> None:
    clock = ManualClock()
    alive, killed = pool(2)
    balancer = OutlierEjection(
        RoundRobin(), clock=clock, consecutive_failures=3, ejection_time=30.0
    )
    picks = []
    for _ in range(20):
        chosen = balancer.pick([alive, killed])
        picks.append(chosen.id)
        balancer.on_start(chosen)
        balancer.on_end(chosen, 0.01, ok=chosen != killed)
    # round robin alternates until the third failure of the killed instance
    assert picks[:6] == ["c0", "c1"] * 3
    assert set(picks[6:]) == {"c0"}
    assert balancer.is_ejected(killed)
    # re-admitted after the cool-down on the clock
    await clock.advance(30.0)
    assert not balancer.is_ejected(killed)
    assert {balancer.pick([alive, killed]).id for _ in range(2)} == {"c0", "c1"}


async def test_a_second_ejection_lasts_longer_and_successes_heal() -> None:
    clock = ManualClock()
    a, b, c = pool(3)
    balancer = OutlierEjection(
        RoundRobin(), clock=clock, consecutive_failures=2, ejection_time=10.0, max_ejection_time=15
    )
    balancer.pick([a, b, c])
    for _ in range(2):
        balancer.on_end(a, 0.1, False)
    assert balancer.is_ejected(a)
    await clock.advance(10.0)
    assert not balancer.is_ejected(a)
    for _ in range(2):
        balancer.on_end(a, 0.1, False)
    await clock.advance(10.0)
    assert balancer.is_ejected(a)  # 2 x 10 s, capped at 15 s
    await clock.advance(5.0)
    assert not balancer.is_ejected(a)
    balancer.on_end(a, 0.1, True)
    balancer.on_end(a, 0.1, False)  # a success reset the run of failures
    assert not balancer.is_ejected(a)


def test_ejection_never_takes_out_more_than_its_share_and_panics_when_all_are_out() -> None:
    clock = ManualClock()
    instances = pool(4)
    balancer = OutlierEjection(
        RoundRobin(), clock=clock, consecutive_failures=1, max_ejected_ratio=0.5
    )
    balancer.pick(instances)
    for instance in instances:
        balancer.on_end(instance, 0.1, False)
    assert [balancer.is_ejected(i) for i in instances] == [True, True, False, False]
    lone = pool(1)
    only = OutlierEjection(RoundRobin(), clock=clock, consecutive_failures=1)
    only.pick(lone)
    only.on_end(lone[0], 0.1, False)
    assert only.is_ejected(lone[0])
    assert only.pick(lone) == lone[0]  # every candidate ejected: pick among all
    with pytest.raises(ValueError, match="consecutive_failures"):
        OutlierEjection(RoundRobin(), clock=clock, consecutive_failures=0)
