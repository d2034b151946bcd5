"""Outlier ejection: an instance that keeps failing leaves the pool for a while.

After ``consecutive_failures`` failed calls in a row an instance is
ejected for ``ejection_time`` seconds of the clock, times the number of
times it was ejected before (at most ``max_ejection_time``), then
re-admitted; each later success takes one off that count. Ejection never
takes more than ``max_ejected_ratio`` of the instances out (at least one
may always go), and when every candidate is ejected the balancer picks
among all of them rather than fail (Envoy's "panic" routing): a possibly
broken instance beats certain failure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lms_shared.clock import Clock
from lms_shared.discovery._balancing import Balancer
from lms_shared.discovery._instance import Instance
from lms_shared.observability import get_logger

__all__ = ["OutlierEjection"]


@dataclass
class _Health:
    failures: int = 0
    ejections: int = 0
    ejected_until: float | None = None


class OutlierEjection:
    """Wraps a balancer; instances that fail in a row are left out for a cool-down.

    Args:
        inner: the balancer that picks among the instances not ejected.
        clock: time for the cool-down.
        consecutive_failures: failed calls in a row that eject an instance.
        ejection_time: seconds of the first ejection.
        max_ejection_time: longest ejection, however often it recurs.
        max_ejected_ratio: most of the pool (0-1) that may be ejected at once.
    """

    def __init__(
        self,
        inner: Balancer,
        *,
        clock: Clock,
        consecutive_failures: int = 5,
        ejection_time: float = 30.0,
        max_ejection_time: float = 300.0,
        max_ejected_ratio: float = 0.5,
    ) -> None:
        if consecutive_failures < 1:
            raise ValueError("consecutive_failures must be at least 1")
        if ejection_time <= 0 or max_ejection_time < ejection_time:
            raise ValueError("need 0 < ejection_time <= max_ejection_time")
        if not 0.0 <= max_ejected_ratio <= 1.0:
            raise ValueError("max_ejected_ratio must be between 0 and 1")
        self.inner = inner
        self._clock = clock
        self.consecutive_failures = consecutive_failures
        self.ejection_time = ejection_time
        self.max_ejection_time = max_ejection_time
        self.max_ejected_ratio = max_ejected_ratio
        self._health: dict[str, _Health] = {}
        self._pool = 0
        self._log = get_logger("lms.discovery")

    def is_ejected(self, instance: Instance) -> bool:
        """Whether ``instance`` is in its cool-down now."""
        health = self._health.get(instance.key)
        if health is None or health.ejected_until is None:
            return False
        if health.ejected_until <= self._clock.monotonic():
            health.ejected_until = None
            self._log.info("instance re-admitted", instance=instance.key)
            return False
        return True

    def admitted(self, instances: Sequence[Instance]) -> list[Instance]:
        """The instances not ejected (all of them when every one is)."""
        healthy = [i for i in instances if not self.is_ejected(i)]
        return healthy or list(instances)

    def pick(self, instances: Sequence[Instance], *, key: str | None = None) -> Instance:
        """The inner pick among the instances not ejected."""
        if not instances:
            raise ValueError("no instances to pick from")
        self._pool = len(instances)
        return self.inner.pick(self.admitted(instances), key=key)

    def on_start(self, instance: Instance) -> None:
        """Passed to the inner balancer."""
        self.inner.on_start(instance)

    def on_end(self, instance: Instance, latency: float, ok: bool) -> None:
        """Count the outcome; eject after too many failures in a row."""
        self.inner.on_end(instance, latency, ok)
        health = self._health.setdefault(instance.key, _Health())
        if ok:
            health.failures = 0
            health.ejections = max(0, health.ejections - 1)
            return
        health.failures += 1
        if health.failures < self.consecutive_failures or self.is_ejected(instance):
            return
        now = self._clock.monotonic()
        ejected = sum(
            1
            for h in self._health.values()
            if h.ejected_until is not None and h.ejected_until > now
        )
        allowed = max(1, math.floor(self.max_ejected_ratio * self._pool))
        if ejected >= allowed:
            return
        health.ejections += 1
        health.failures = 0
        seconds = min(self.max_ejection_time, self.ejection_time * health.ejections)
        health.ejected_until = now + seconds
        self._log.warning(
            "instance ejected after consecutive failures",
            instance=instance.key,
            seconds=seconds,
            failures=self.consecutive_failures,
        )
