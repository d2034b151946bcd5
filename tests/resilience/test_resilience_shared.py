"""Breaker state shared through the real Redis: one replica tripping never opens the cluster.

Each replica is a breaker and a SharedBreakerState of its own (its own
Redis connection), as separate processes would have; they share a key
prefix unique to the test and one manual clock.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from lms_shared.resilience import (
    BreakerConfig,
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpen,
    SharedBreakerState,
    SharedStateUnavailable,
)
from lms_shared.testing import ManualClock

from .conftest import record, succeed

pytestmark = pytest.mark.redis

CONFIG = BreakerConfig(
    sliding_window_size=2, minimum_number_of_calls=2, wait_duration_in_open_state=30
)

Replica = tuple[CircuitBreaker, SharedBreakerState]


@pytest.fixture
async def replicas(
    redis_url: str, key_prefix: str, clock: ManualClock
) -> AsyncIterator[Callable[..., Replica]]:
    made: list[SharedBreakerState] = []

    def replica(name: str, quorum: int | float = 2) -> Replica:
        breaker = CircuitBreaker("identity", CONFIG, clock=clock)
        shared = SharedBreakerState(
            redis_url, clock=clock, replica=name, quorum=quorum, prefix=key_prefix
        )
        shared.attach(breaker)
        made.append(shared)
        return breaker, shared

    try:
        yield replica
    finally:
        for shared in made:
            await shared.stop()
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{key_prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


async def sync_all(*states: SharedBreakerState) -> None:
    for state in states:
        await state.sync()
    for state in states:  # the early ones see the votes published after them
        await state.sync()


async def test_one_replica_tripping_does_not_open_the_cluster(
    replicas: Callable[..., Replica],
) -> None:
    a, shared_a = replicas("a")
    b, shared_b = replicas("b")
    await sync_all(shared_a, shared_b)
    await record(a, failures=2)
    await sync_all(shared_a, shared_b)
    view = shared_b.view("identity")
    assert view is not None
    assert (view.votes, view.replicas, view.required, view.open) == (1, 2, 2, False)
    with pytest.raises(CircuitOpen):
        await a.call(succeed)  # the replica that saw the failures stops calling
    assert await b.call(succeed) == "ok"  # the other one goes on
    assert not b.metrics().cluster_open


async def test_a_quorum_opens_the_breaker_cluster_wide(
    replicas: Callable[..., Replica], clock: ManualClock
) -> None:
    a, shared_a = replicas("a")
    b, shared_b = replicas("b")
    c, shared_c = replicas("c")  # has seen no failure at all
    await sync_all(shared_a, shared_b, shared_c)
    await record(a, failures=2)
    await sync_all(shared_a, shared_b, shared_c)
    assert await c.call(succeed) == "ok"
    await clock.advance(10)
    await record(b, failures=2)
    await sync_all(shared_a, shared_b, shared_c)
    view = shared_c.view("identity")
    assert view is not None
    assert (view.votes, view.replicas, view.open) == (2, 3, True)
    # held until fewer than two votes remain: a's expires first, 20 s from now
    assert view.open_for == pytest.approx(20, abs=0.01)
    with pytest.raises(CircuitOpen) as caught:
        await c.call(succeed)
    assert caught.value.retry_after == pytest.approx(20, abs=0.01)
    assert c.metrics().cluster_open
    assert c.metrics().not_permitted_calls == 1
    await clock.advance(20)
    await sync_all(shared_a, shared_b, shared_c)
    assert shared_c.view("identity").open is False  # type: ignore[union-attr]
    assert await c.call(succeed) == "ok"


async def test_a_replica_leaving_open_withdraws_its_vote(
    replicas: Callable[..., Replica], clock: ManualClock
) -> None:
    a, shared_a = replicas("a")
    b, shared_b = replicas("b")
    await record(a, failures=2)
    await record(b, failures=2)
    await sync_all(shared_a, shared_b)
    assert shared_a.view("identity").open  # type: ignore[union-attr]
    b.transition_to_closed_state()  # an operator closes b
    await sync_all(shared_a, shared_b)
    view = shared_a.view("identity")
    assert view is not None
    assert (view.votes, view.open) == (1, False)
    assert not a.cluster_open


async def test_a_quorum_can_be_a_share_of_the_live_replicas(
    replicas: Callable[..., Replica],
) -> None:
    a, shared_a = replicas("a", 0.5)
    _, shared_b = replicas("b", 0.5)
    _, shared_c = replicas("c", 0.5)
    _, shared_d = replicas("d", 0.5)
    await sync_all(shared_a, shared_b, shared_c, shared_d)
    await record(a, failures=2)
    await sync_all(shared_a, shared_b, shared_c, shared_d)
    view = shared_d.view("identity")
    assert view is not None
    assert (view.replicas, view.required, view.open) == (4, 2, False)


async def test_the_background_loop_syncs_on_a_state_change(
    replicas: Callable[..., Replica],
) -> None:
    a, shared_a = replicas("a", 1)
    await shared_a.start()
    await record(a, failures=2)  # the transition wakes the loop
    for _ in range(500):  # bounded poll: the sync is a real Redis round trip
        view = shared_a.view("identity")
        if view is not None and view.votes == 1:
            break
        await asyncio.sleep(0.01)
    view = shared_a.view("identity")
    assert view is not None
    assert (view.votes, view.open) == (1, True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_redis_down_is_a_typed_error_and_releases_cluster_holds(clock: ManualClock) -> None:
    breaker = CircuitBreaker("identity", CONFIG, clock=clock)
    shared = SharedBreakerState(
        f"redis://127.0.0.1:{free_port()}/0", clock=clock, replica="a", connect_timeout=1
    )
    shared.attach(breaker)
    with pytest.raises(SharedStateUnavailable, match="shared breaker state failed"):
        await shared.sync()
    breaker.set_cluster_open(100)  # as if an earlier sync had seen a quorum
    await shared.start()
    try:
        for _ in range(300):  # bounded poll: the loop's failed sync releases the hold
            if not breaker.cluster_open:
                break
            await asyncio.sleep(0.01)
    finally:
        await shared.stop()
    assert not breaker.cluster_open
    assert await breaker.call(succeed) == "ok"  # each replica decides alone


async def test_a_registry_shares_every_breaker_it_makes(
    redis_url: str, key_prefix: str, clock: ManualClock
) -> None:
    registry = BreakerRegistry(clock=clock, config=CONFIG)
    early = registry.get("identity")
    shared = SharedBreakerState(redis_url, clock=clock, replica="a", quorum=1, prefix=key_prefix)
    shared.attach_registry(registry)
    late = registry.get("identity", "10.0.0.7:8000")
    try:
        await record(late, failures=2)
        views = await shared.sync()
    finally:
        await shared.stop()
    assert set(views) == {early.name, late.name}
    assert views[late.name].open
    assert not views[early.name].open


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"quorum": 0}, "quorum"),
        ({"quorum": 1.5}, "quorum"),
        ({"quorum": True}, "quorum"),
        ({"sync_interval": 0}, "sync_interval"),
    ],
)
def test_invalid_shared_states_are_refused(
    clock: ManualClock, options: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        SharedBreakerState("redis://127.0.0.1:6379/0", clock=clock, **options)  # type: ignore[arg-type]
