"""The :class:`Discovery` facade: cached lookups, balanced picks, self-registration.

What a service holds as ``service.discovery``. It owns the registry (starts
and stops it as a lifecycle component), keeps one cache per service it
has looked up, refreshed by the registry's watch (or polls), and one
balancer per service, built by a factory (:func:`default_balancer` unless
given): outlier ejection around zone preference around consistent hashing
on ``key`` with the configured policy for calls without a key.

``register_self`` returns a second lifecycle component that registers this
instance after the registry started and deregisters it before it stops;
on read-only registries (static, Kubernetes DNS) it registers nothing and
says so in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Literal

from lms_shared.clock import Clock
from lms_shared.discovery._balancing import (
    Balancer,
    ConsistentHash,
    LeastOutstanding,
    PowerOfTwoEWMA,
    Random,
    RoundRobin,
    ZonePreference,
)
from lms_shared.discovery._errors import NoInstances
from lms_shared.discovery._instance import Instance, check_service_name
from lms_shared.discovery._outliers import OutlierEjection
from lms_shared.discovery._registry import Registration, Registry, registry_from_url
from lms_shared.errors import LmsError
from lms_shared.observability import get_logger
from lms_shared.settings import Settings

__all__ = ["Call", "Discovery", "DiscoveryConfig", "SelfRegistration", "default_balancer"]

BalancerKind = Literal["round_robin", "random", "least_outstanding", "p2c_ewma"]


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """The ``LMS_DISCOVERY_*`` settings as one frozen value.

    Attributes:
        url: the registry URL (``None``: the local SQLite registry).
        state_dir: folder of the local registry.
        ttl: seconds this instance's registration lives without a renewal.
        poll: seconds between polls of registries without a watch.
        timeout: seconds one registry request may take.
        balancer: the policy for calls without an affinity key.
        zone: this instance's zone; balancing prefers instances there.
        address: the address other services reach this instance at
            (``None``: this instance does not register).
        port: its port.
        failures: failed calls in a row that eject an instance.
        ejection: seconds of a first ejection.
    """

    url: str | None = None
    state_dir: Path = Path(".lms")
    ttl: float = 10.0
    poll: float = 2.0
    timeout: float = 5.0
    balancer: BalancerKind = "p2c_ewma"
    zone: str | None = None
    address: str | None = None
    port: int | None = None
    failures: int = 5
    ejection: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscoveryConfig:
        """Read the ``LMS_DISCOVERY_*`` settings."""
        return cls(
            url=settings.discovery_url,
            state_dir=settings.state_dir,
            ttl=settings.discovery_ttl,
            poll=settings.discovery_poll,
            timeout=settings.discovery_timeout,
            balancer=settings.discovery_balancer,
            zone=settings.discovery_zone,
            address=settings.discovery_address,
            port=settings.discovery_port,
            failures=settings.discovery_failures,
            ejection=settings.discovery_ejection,
        )

    def self_instance(self, service: str, version: str | None = None) -> Instance | None:
        """This process as an instance of ``service``, or ``None`` without an address.

        Its id is ``address:port``, so a restarted process replaces its
        predecessor's entry at once.

        Raises:
            ValueError: an address without a port, or a malformed field.
        """
        if self.address is None:
            return None
        if self.port is None:
            raise ValueError("LMS_DISCOVERY_ADDRESS needs LMS_DISCOVERY_PORT")
        return Instance(
            service,
            f"{self.address}:{self.port}",
            self.address,
            self.port,
            version=version,
            zone=self.zone,
        )


def default_balancer(config: DiscoveryConfig, *, clock: Clock) -> Balancer:
    """Outlier ejection, zone preference, consistent hashing on ``key``, then the policy."""
    policies: dict[str, Callable[[], Balancer]] = {
        "round_robin": RoundRobin,
        "random": Random,
        "least_outstanding": LeastOutstanding,
        "p2c_ewma": lambda: PowerOfTwoEWMA(clock=clock),
    }
    balancer: Balancer = ConsistentHash(fallback=policies[config.balancer]())
    if config.zone:
        balancer = ZonePreference(balancer, zone=config.zone)
    return OutlierEjection(
        balancer,
        clock=clock,
        consecutive_failures=config.failures,
        ejection_time=config.ejection,
        max_ejection_time=max(config.ejection, 300.0),
    )


class Call:
    """One call to a picked instance; tells the balancer how it went.

    Use it as a context manager (an exception counts as a failure) or call
    :meth:`end` with the outcome (an HTTP 5xx is a failure the code must
    name). Ending twice has no effect.

    Attributes:
        instance: the instance to call.
    """

    def __init__(self, instance: Instance, balancer: Balancer, clock: Clock) -> None:
        self.instance = instance
        self._balancer = balancer
        self._clock = clock
        self._started = clock.monotonic()
        self._ended = False
        balancer.on_start(instance)

    def end(self, ok: bool) -> float:
        """Report the outcome; returns the latency in seconds of the clock."""
        latency = self._clock.monotonic() - self._started
        if not self._ended:
            self._ended = True
            self._balancer.on_end(self.instance, latency, ok)
        return latency

    def __enter__(self) -> Call:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end(ok=exc is None)


class _View:
    def __init__(self, instances: list[Instance], now: float) -> None:
        self.instances = instances
        self.task: asyncio.Task[None] | None = None
        self.looked_up = now  # monotonic time of the last direct lookup


# an empty cache is looked up again directly at most this often: an instance
# registered since the last poll of the watch is found on the next call, not
# one poll interval later (a caller starting beside its callee)
_EMPTY_RECHECK = 0.25


class Discovery:
    """Lookups through a cache kept fresh by the registry, and balanced picks.

    Args:
        registry: where instances are registered and looked up.
        clock: the service's clock.
        balancer_factory: makes each looked-up service's balancer
            (default: :func:`default_balancer` of a default config).
    """

    name = "discovery"

    def __init__(
        self,
        registry: Registry,
        *,
        clock: Clock,
        balancer_factory: Callable[[str], Balancer] | None = None,
    ) -> None:
        self.registry = registry
        self._clock = clock
        default = DiscoveryConfig()
        self._factory = balancer_factory or (lambda _: default_balancer(default, clock=clock))
        self._views: dict[str, _View] = {}
        self._balancers: dict[str, Balancer] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._log = get_logger("lms.discovery")

    @classmethod
    def from_config(cls, config: DiscoveryConfig, *, clock: Clock) -> Discovery:
        """The registry of ``config.url`` and the balancers the config describes.

        Raises:
            DiscoveryConfigError: the URL is invalid.
        """
        registry = registry_from_url(
            config.url,
            clock=clock,
            state_dir=config.state_dir,
            poll_interval=config.poll,
            timeout=config.timeout,
        )
        return cls(
            registry, clock=clock, balancer_factory=lambda _: default_balancer(config, clock=clock)
        )

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Start the registry."""
        await self.registry.start()

    async def stop(self) -> None:
        """Stop following services, then stop the registry."""
        views, self._views = self._views, {}
        tasks = [view.task for view in views.values() if view.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.registry.stop()

    async def ping(self) -> None:
        """Raise :class:`RegistryUnavailable` when the registry does not answer."""
        await self.registry.ping()

    def register_self(
        self,
        instance: Instance,
        *,
        ttl: float,
        metadata: Callable[[], Mapping[str, str]] | None = None,
    ) -> SelfRegistration:
        """A lifecycle component registering ``instance`` (add it after this one).

        ``metadata``, when given, is called at start and its entries join
        the instance's (what is only known once the service is built).
        """
        return SelfRegistration(self.registry, instance, ttl=ttl, metadata=metadata)

    # -- lookups ---------------------------------------------------------

    async def instances(self, service: str) -> list[Instance]:
        """The healthy instances of ``service``, from the cache.

        The first call looks the service up and starts following it; later
        calls answer from the cache, which the registry's watch keeps
        fresh; an empty cache is looked up again directly (at most four
        times a second), so an instance registered since the watch's last
        poll is found at once. While the registry is unreachable the last
        known instances are served.

        Raises:
            RegistryUnavailable: the first lookup failed.
        """
        view = self._views.get(service)
        if view is None:
            check_service_name(service)
            lock = self._locks.setdefault(service, asyncio.Lock())
            async with lock:
                view = self._views.get(service)
                if view is None:
                    found = await self.registry.lookup(service)
                    view = _View(found, self._clock.monotonic())
                    view.task = asyncio.get_running_loop().create_task(
                        self._follow(service, view), name=f"lms-discovery-follow:{service}"
                    )
                    self._views[service] = view
        elif not view.instances and self._clock.monotonic() - view.looked_up >= _EMPTY_RECHECK:
            view.looked_up = self._clock.monotonic()
            with contextlib.suppress(LmsError):  # unreachable: the watch reports it
                view.instances = await self.registry.lookup(service)
        return list(view.instances)

    async def _follow(self, service: str, view: _View) -> None:
        attempt = 0
        while True:
            try:
                async with contextlib.aclosing(self.registry.watch(service)) as snapshots:
                    async for snapshot in snapshots:
                        view.instances = snapshot
                        attempt = 0
                return  # the registry stopped
            except LmsError as exc:  # a watch must not end on a registry error: log, back off
                attempt += 1
                self._log.warning("watch failed; resuming", service=service, error=repr(exc))
                await self._clock.sleep(min(30.0, 0.5 * 2 ** min(attempt, 6)))

    def balancer(self, service: str) -> Balancer:
        """The balancer of ``service`` (made on first use)."""
        balancer = self._balancers.get(service)
        if balancer is None:
            balancer = self._balancers[service] = self._factory(service)
        return balancer

    async def resolve(
        self, service: str, *, key: str | None = None, balancer: Balancer | None = None
    ) -> Instance:
        """Pick an instance of ``service`` (no feedback: prefer :meth:`begin`).

        Args:
            service: the service's name.
            key: affinity key: the same key goes to the same instance
                while the instances do not change.
            balancer: overrides the service's balancer for this pick.

        Raises:
            NoInstances: no healthy instance is known.
            RegistryUnavailable: the first lookup of the service failed.
        """
        instances = await self.instances(service)
        if not instances:
            raise NoInstances(service)
        return (balancer or self.balancer(service)).pick(instances, key=key)

    async def begin(
        self, service: str, *, key: str | None = None, balancer: Balancer | None = None
    ) -> Call:
        """Pick an instance and start a :class:`Call` that reports back to the balancer.

        Raises:
            NoInstances: no healthy instance is known.
            RegistryUnavailable: the first lookup of the service failed.
        """
        chosen = balancer or self.balancer(service)
        instance = await self.resolve(service, key=key, balancer=chosen)
        return Call(instance, chosen, self._clock)


class SelfRegistration:
    """Registers this instance at start-up and deregisters it at shutdown.

    Args:
        registry: the (started) registry.
        instance: this instance.
        ttl: seconds the entry lives without a renewal.

    Attributes:
        registration: the live registration (``None`` before start, after
            stop, and on read-only registries).
    """

    name = "discovery-registration"

    def __init__(
        self,
        registry: Registry,
        instance: Instance,
        *,
        ttl: float,
        metadata: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl}")
        self.registry = registry
        self.instance = instance
        self.ttl = ttl
        self.metadata = metadata
        self.registration: Registration | None = None
        self._log = get_logger("lms.discovery", service=instance.service, instance=instance.id)

    async def start(self) -> None:
        """Register (or, on a read-only registry, log that registration is owned elsewhere)."""
        if self.registry.read_only:
            self._log.info(
                "registry is read-only; not registering",
                backend=self.registry.name,
                reason="the instance list is owned by the settings or by Kubernetes",
            )
            return
        instance = self.instance
        if self.metadata is not None:  # known only at start (the service's declarations)
            instance = replace(instance, metadata={**instance.metadata, **self.metadata()})
            self.instance = instance
        self.registration = await self.registry.register(instance, ttl=self.ttl)

    async def set_healthy(self, healthy: bool) -> None:
        """Publish a health state (unhealthy instances leave others' lookups)."""
        if self.registration is not None:
            await self.registration.set_healthy(healthy)

    async def stop(self) -> None:
        """Stop renewing and deregister."""
        registration, self.registration = self.registration, None
        if registration is not None:
            await registration.close()
