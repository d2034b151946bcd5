"""Load balancers: which instance of a service the next call goes to.

A :class:`Balancer` picks one of the healthy instances and hears how each
call went (:meth:`~Balancer.on_start`, :meth:`~Balancer.on_end`), so
latency- and load-aware policies can learn. State is keyed by
:attr:`Instance.key`, so it survives new snapshots of the same instances.
Wrappers compose: ``OutlierEjection(ZonePreference(ConsistentHash(
fallback=PowerOfTwoEWMA(clock=clock)), zone="eu-1"), clock=clock)``.

Written here rather than taken from a library: the policies are a few
lines each, must read the injected clock and a seeded rng (tests are
deterministic), and the Python hash-ring packages (uhashring) are neither
typed nor installed with the chassis. The ring hashes with BLAKE2b, 160
virtual nodes per instance, as ketama does.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from lms_shared.clock import Clock
from lms_shared.discovery._instance import Instance

__all__ = [
    "Balancer",
    "ConsistentHash",
    "LeastOutstanding",
    "PowerOfTwoEWMA",
    "Random",
    "RoundRobin",
    "VersionCanary",
    "ZonePreference",
]


@runtime_checkable
class Balancer(Protocol):
    """Chooses an instance for each call and learns from how calls went."""

    def pick(self, instances: Sequence[Instance], *, key: str | None = None) -> Instance:
        """One of ``instances`` (never empty: the caller checks).

        Args:
            instances: the healthy candidates, sorted by id.
            key: affinity key (a course or user id); only hashing
                balancers use it.

        Raises:
            ValueError: ``instances`` is empty.
        """
        ...

    def on_start(self, instance: Instance) -> None:
        """A call to ``instance`` begins."""
        ...

    def on_end(self, instance: Instance, latency: float, ok: bool) -> None:
        """A call to ``instance`` ended after ``latency`` seconds; ``ok`` is its outcome."""
        ...


def _require(instances: Sequence[Instance]) -> None:
    if not instances:
        raise ValueError("no instances to pick from")


class _NoFeedback:
    def on_start(self, instance: Instance) -> None:
        """Ignored: this policy does not learn."""

    def on_end(self, instance: Instance, latency: float, ok: bool) -> None:
        """Ignored: this policy does not learn."""


class RoundRobin(_NoFeedback):
    """Each instance in turn."""

    def __init__(self) -> None:
        self._next = 0

    def pick(self, instances: Sequence[Instance], *, key: str | None = None) -> Instance:
        """The next instance after the previous pick's position."""
        _require(instances)
        chosen = instances[self._next % len(instances)]
        self._next += 1
        return chosen


class Random(_NoFeedback):
    """A uniformly random instance.

    Args:
        rng: the random source (seed one in tests).
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()  # noqa: S311 (balancing, not security)

    def pick(self, instances: Sequence[Instance], *, key: str | None = None) -> Instance:
        """A random instance."""
        _require(instances)
        return self._rng.choice(instances)


class LeastOutstanding:
    """The instance with the fewest calls in flight (ties broken at random).

    Args:
        rng: the random source for ties.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()  # noqa: S311
        self._outstanding: dict[str, int] = {}

    def outstanding(self, instance: Instance) -> int:
        """Calls to ``instance`` in flight."""
        return self._outstanding.get(instance.key, 0)

    def pick(self, instances: Sequence[Instance], *, key: str | None = None) -> Instance:
        """An instance with the fewest calls in flight."""
        _require(instances)
        counts = self._outstanding
        loads = [counts.get(i.key, 0) for i in instances]
        fewest = min(loads)
        if fewest == 0 and not counts:
            return self._rng.choice(instances)
        return self._rng.choice([i for i, n in zip(instances, loads, strict=True) if n == fewest])

    def on_start(self, instance: Instance) -> None:
        """Count one more call in flight."""
        self._outstanding[instance.key] = self.outstanding(instance) + 1

    def on_end(self, instance: Instance, latency: float, ok: bool) -> None:
        """Count one call fewer."""
        left = self.outstanding(instance) - 1
        if left > 0:
            self._outstanding[instance.key] = left
        else:
            self._outstanding.pop(instance.key, None)


class PowerOfTwoEWMA:
    """Of two random instances, the one with the lower peak-EWMA latency x load.

    Each instance's cost is its latency EWMA (jumping to any slower sample
    at once, decaying with time constant ``decay`` seconds of the clock)
    times ``1 + calls in flight``. Idle instances' costs decay toward zero,
    so a once-slow instance is tried again (Finagle's and Linkerd's policy).

    Args:
        clock: time for the decay.
        rng: the random source for the two candidates.
        decay: seconds of the EWMA's time constant.
        default_latency: the assumed latency of an instance not yet measured.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        decay: float = 10.0,
        default_latency: float = 0.05,
    ) -> None:
        if decay <= 0:
            raise ValueError(f"decay must be positive, got {decay}")
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311
        self._decay = decay
        self._default = default_latency
        self._ewma: dict[str, tuple[float, float]] = {}  # key -> (ewma, stamp)
        self._outstanding: dict[str, int] = {}

    def latency(self, instance: Instance) -> float:
        """The instance's latency estimate now (decayed since its last sample)."""
        entry = self._ewma.get(instance.key)
        if entry is None:
            return self._default
        value, stamp = entry
        elapsed = max(0.0, self._clock.monotonic() - stamp)
        return value * math.exp(-elapsed / self._decay)

    def cost(self, instance: Instance) -> float:
        """Latency estimate times ``1 + calls in flight``."""
        return self.latency(instance) * (self._outstanding.get(instance.key, 0) + 1)

    def pick(self, instances: Sequence[Instance], *, key: str | None = None) -> Instance:
        """The cheaper of two distinct random instances."""
        _require(instances)
        if len(instances) == 1:
            return instances[0]
        first = self._rng.randrange(len(instances))
        second = self._rng.randrange(len(instances) - 1)
        second += second >= first  # two distinct indices, uniformly
        a, b = instances[first], instances[second]
        return b if self.cost(b) < self.cost(a) else a

    def on_start(self, instance: Instance) -> None:
        """Count one more call in flight."""
        self._outstanding[instance.key] = self._outstanding.get(instance.key, 0) + 1

    def on_end(self, instance: Instance, latency: float, ok: bool) -> None:
        """Fold the latency into the EWMA (a slower sample replaces it: peak EWMA)."""
        left = self._outstanding.get(instance.key, 0) - 1
        if left > 0:
            self._outstanding[instance.key] = left
        else:
            self._outstanding.pop(instance.key, None)
        now = self._clock.monotonic()
        entry = self._ewma.get(instance.key)
        if entry is None or latency > entry[0]:
            self._ewma[instance.key] = (latency, now)
            return
        value, stamp = entry
        weight = math.exp(-max(0.0, now - stamp) / self._decay)
        self._ewma[instance.key] = (value * weight + latency * (1 - weight), now)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class ConsistentHash:
    """The same key goes to the same instance; a membership change moves ~1/n keys.

    Each instance owns ``vnodes`` points on a 64-bit ring; a key goes to
    the first point at or after its own hash. The ring is rebuilt only when
    the set of instances changes. Picks without a key go to ``fallback``,
    which also hears all feedback.

    Args:
        vnodes: points per instance (more: a more even spread).
        fallback: the balancer for calls without a key (round robin).
    """

    def __init__(self, *, vnodes: int = 160, fallback: Balancer | None = None) -> None:
        if not 1 <= vnodes <= 10_000:
            raise ValueError(f"vnodes must be 1-10000, got {vnodes}")
        self._vnodes = vnodes
        self.fallback: Balancer = fallback or RoundRobin()
        self._given: tuple[str, ...] = ()
        self._members: tuple[str, ...] = ()
        self._points: list[int] = []
        self._owners: list[str] = []

    def _ring(self, instances: Sequence[Instance]) -> None:
        given = tuple(i.key for i in instances)
        if given == self._given:
            return
        self._given = given
        members = tuple(sorted(given))
        if members == self._members:
            return
        ring = sorted(
            (_hash(f"{member}#{v}"), member) for member in members for v in range(self._vnodes)
        )
        self._points = [point for point, _ in ring]
        self._owners = [owner for _, owner in ring]
        self._members = members

    def pick(self, instances: Sequence[Instance], *, key: str | None = None) -> Instance:
        """The owner of ``key`` on the ring; without a key, the fallback's pick."""
        _require(instances)
        if key is None:
            return self.fallback.pick(instances)
        self._ring(instances)
        index = bisect.bisect_left(self._points, _hash(key)) % len(self._points)
        owner = self._owners[index]
        return next(i for i in instances if i.key == owner)

    def on_start(self, instance: Instance) -> None:
        """Passed to the fallback."""
        self.fallback.on_start(instance)

    def on_end(self, instance: Instance, latency: float, ok: bool) -> None:
        """Passed to the fallback."""
        self.fallback.on_end(instance, latency, ok)


class ZonePreference:
    """Instances of the local zone first; the others only when it has none.

    Args:
        inner: the balancer that picks among the preferred instances.
        zone: this instance's zone (``None``: no preference).
    """

    def __init__(self, inner: Balancer, *, zone: str | None) -> None:
        self.inner = inner
        self.zone = zone

    def pick(self, instances: Sequence[Instance], *, key: str | None = None) -> Instance:
        """The inner pick among the local zone's instances, or among all."""
        _require(instances)
        local = [i for i in instances if i.zone == self.zone] if self.zone else []
        return self.inner.pick(local or instances, key=key)

    def on_start(self, instance: Instance) -> None:
        """Passed to the inner balancer."""
        self.inner.on_start(instance)

    def on_end(self, instance: Instance, latency: float, ok: bool) -> None:
        """Passed to the inner balancer."""
        self.inner.on_end(instance, latency, ok)


class VersionCanary:
    """A share of calls to instances of one version (a canary), the rest elsewhere.

    With canary instances and others both present, each call goes to a
    canary with probability ``share``; when only one group exists, to it.

    Args:
        inner: the balancer that picks within the chosen group.
        version: the canary version.
        share: fraction of calls (0-1) for the canary; 1.0 pins calls to it.
        rng: the random source (seed one in tests).
    """

    def __init__(
        self,
        inner: Balancer,
        *,
        version: str,
        share: float,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be between 0 and 1, got {share}")
        self.inner = inner
        self.version = version
        self.share = share
        self._rng = rng or random.Random()  # noqa: S311

    def pick(self, instances: Sequence[Instance], *, key: str | None = None) -> Instance:
        """The inner pick among the canaries (with probability ``share``) or the others."""
        _require(instances)
        canaries = [i for i in instances if i.version == self.version]
        others = [i for i in instances if i.version != self.version]
        if canaries and others:
            group = canaries if self._rng.random() < self.share else others
        else:
            group = canaries or others
        return self.inner.pick(group, key=key)

    def on_start(self, instance: Instance) -> None:
        """Passed to the inner balancer."""
        self.inner.on_start(instance)

    def on_end(self, instance: Instance, latency: float, ok: bool) -> None:
        """Passed to the inner balancer."""
        self.inner.on_end(instance, latency, ok)
