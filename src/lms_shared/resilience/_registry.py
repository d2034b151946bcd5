"""Breakers per service and per instance, made on first use, bounded in number.

The inter-service client keeps one breaker per service (is ``identity``
failing?) and one per instance (is ``identity`` at ``10.0.0.7:8000``
failing? then the balancer skips it). :class:`BreakerRegistry` makes
them on demand with the service's own :class:`BreakerConfig` (or the
default), and keeps at most ``max_breakers``: instances come and go with
deployments, so the least recently used breaker is dropped when a new
one would exceed the bound. Listeners given to the registry are attached
to every breaker it makes (metrics, the shared state).

Not a :class:`lms_shared.caching.BoundedCache`: that cache evicts first
in, first out, which here would drop the busiest breakers (a service's
own, made first and used on every call); a breaker is state to keep
while it is used, so the bound is least recently *used*, and a lookup is
one ``OrderedDict.move_to_end``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Mapping

from lms_shared.clock import Clock
from lms_shared.resilience._breaker import (
    BreakerConfig,
    BreakerMetrics,
    CircuitBreaker,
    StateChange,
)

__all__ = ["BreakerRegistry"]


class BreakerRegistry:
    """The circuit breakers of a service's dependencies.

    Args:
        clock: the service clock.
        config: the configuration of breakers without a specific one.
        configs: configuration per service name (per-instance breakers
            of a service use the service's).
        max_breakers: breakers kept at most (least recently used dropped).
        listeners: attached to every breaker made
            (:meth:`CircuitBreaker.on_state_change`).

    Raises:
        ValueError: ``max_breakers`` < 1.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        config: BreakerConfig | None = None,
        configs: Mapping[str, BreakerConfig] | None = None,
        max_breakers: int = 1024,
        listeners: tuple[Callable[[StateChange], object], ...] = (),
    ) -> None:
        if max_breakers < 1:
            raise ValueError(f"max_breakers must be >= 1, got {max_breakers}")
        self.clock = clock
        self.config = config or BreakerConfig()
        self.configs = dict(configs or {})
        self.max_breakers = max_breakers
        self.listeners = listeners
        self._breakers: collections.OrderedDict[str, CircuitBreaker] = collections.OrderedDict()
        self._created: list[Callable[[CircuitBreaker], object]] = []

    def __repr__(self) -> str:
        return f"BreakerRegistry({len(self._breakers)} breakers)"

    def __len__(self) -> int:
        return len(self._breakers)

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(tuple(self._breakers.values()))

    @staticmethod
    def key(service: str, instance: str | None = None) -> str:
        """The breaker name of a service (``"identity"``) or instance (``"identity/host:port"``)."""
        return service if instance is None else f"{service}/{instance}"

    def on_create(self, hook: Callable[[CircuitBreaker], object]) -> None:
        """Call ``hook`` with every breaker made from now on (the shared state attaches)."""
        self._created.append(hook)

    def get(self, service: str, instance: str | None = None) -> CircuitBreaker:
        """The breaker of ``service`` (or of one of its instances), made on first use."""
        name = self.key(service, instance)
        breaker = self._breakers.get(name)
        if breaker is not None:
            self._breakers.move_to_end(name)
            return breaker
        breaker = CircuitBreaker(name, self.configs.get(service, self.config), clock=self.clock)
        for listener in self.listeners:
            breaker.on_state_change(listener)
        for hook in self._created:
            hook(breaker)
        self._breakers[name] = breaker
        while len(self._breakers) > self.max_breakers:
            _, dropped = self._breakers.popitem(last=False)
            dropped.close()
        return breaker

    def find(self, service: str, instance: str | None = None) -> CircuitBreaker | None:
        """The breaker if it exists (never makes one)."""
        return self._breakers.get(self.key(service, instance))

    def metrics(self) -> dict[str, BreakerMetrics]:
        """The metrics of every breaker, by name."""
        return {name: breaker.metrics() for name, breaker in tuple(self._breakers.items())}

    async def aclose(self) -> None:
        """Cancel every breaker's pending timer."""
        for breaker in tuple(self._breakers.values()):
            await breaker.aclose()
