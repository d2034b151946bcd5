"""Breakers per service and per instance, made on demand and bounded in number."""

from __future__ import annotations

import pytest

from lms_shared.resilience import BreakerConfig, BreakerRegistry, BreakerState, StateChange
from lms_shared.testing import ManualClock

from .conftest import record

QUICK = BreakerConfig(sliding_window_size=2, minimum_number_of_calls=2)


async def test_one_breaker_per_service_and_per_instance(clock: ManualClock) -> None:
    registry = BreakerRegistry(clock=clock, configs={"identity": QUICK})
    service = registry.get("identity")
    instance = registry.get("identity", "10.0.0.7:8000")
    other = registry.get("grading")
    assert registry.get("identity") is service
    assert (service.name, instance.name) == ("identity", "identity/10.0.0.7:8000")
    assert instance.config is QUICK  # instances use their service's configuration
    assert other.config == BreakerConfig()
    assert registry.find("identity", "10.0.0.8:8000") is None
    await record(instance, failures=2)
    metrics = registry.metrics()
    assert metrics["identity/10.0.0.7:8000"].state is BreakerState.OPEN
    assert metrics["identity"].state is BreakerState.CLOSED  # the instance alone is open


async def test_the_registry_is_bounded_least_recently_used_first(clock: ManualClock) -> None:
    registry = BreakerRegistry(clock=clock, max_breakers=2)
    first = registry.get("identity", "a")
    registry.get("identity", "b")
    registry.get("identity", "a")  # a is used again: b is now the oldest
    registry.get("identity", "c")
    assert len(registry) == 2
    assert registry.find("identity", "b") is None
    assert registry.find("identity", "a") is first
    assert [b.name for b in registry] == ["identity/a", "identity/c"]


async def test_listeners_and_hooks_reach_every_breaker(clock: ManualClock) -> None:
    changes: list[StateChange] = []
    registry = BreakerRegistry(clock=clock, config=QUICK, listeners=(changes.append,))
    made: list[str] = []
    registry.on_create(lambda breaker: made.append(breaker.name))
    await record(registry.get("identity"), failures=2)
    await record(registry.get("grading"), failures=2)
    assert made == ["identity", "grading"]
    assert [(c.breaker, c.to_state) for c in changes] == [
        ("identity", BreakerState.OPEN),
        ("grading", BreakerState.OPEN),
    ]
    await registry.aclose()


def test_the_bound_must_be_positive(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="max_breakers"):
        BreakerRegistry(clock=clock, max_breakers=0)
