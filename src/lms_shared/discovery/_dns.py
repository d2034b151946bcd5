"""Kubernetes DNS: instances from the cluster's DNS records (read-only).

A Service ``name`` in ``namespace`` is ``name.namespace.svc.<domain>``.
Ports come from SRV records ``_<port-name>._tcp.name.namespace.svc.<domain>``
(one per ready pod of a headless Service, one for a ClusterIP Service),
addresses from the SRV answer's additional section or from A/AAAA queries
of the targets. Without SRV records the A/AAAA records of the Service name
are used with a default port. Answers are cached for their DNS TTL (at most
``max_ttl``) on the injected clock.

Kubernetes owns registration (readiness probes decide which pods are in
the records), so writes raise :class:`RegistryReadOnly`; the
:class:`~lms_shared.discovery.Discovery` facade skips self-registration on
read-only registries and logs why. DNS cannot list services:
:meth:`KubernetesDnsRegistry.list_services` names those given with
``services=`` and those looked up so far that have instances.

URLs: ``k8s://namespace`` asks the system resolver (``/etc/resolv.conf``,
the cluster DNS inside a pod); ``dns://host:port/namespace`` asks that
resolver (tests point it at dnsmasq on loopback). Options: ``domain=``
(``cluster.local``), ``port_name=`` (``http``), ``port=`` (80, when there
are no SRV records), ``services=a,b``, ``max_ttl=``, ``timeout=``, ``poll=``.
Needs dnspython (``pip install 'lms-shared[kubernetes]'``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from lms_shared.caching import BoundedCache
from lms_shared.clock import Clock
from lms_shared.discovery._errors import (
    DiscoveryConfigError,
    RegistryReadOnly,
    RegistryUnavailable,
)
from lms_shared.discovery._instance import Instance, check_service_name
from lms_shared.discovery._registry import BackendOptions, Registration, sleep_unless_stopped
from lms_shared.observability import get_logger

__all__ = ["KubernetesDnsRegistry"]

_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
_PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?")
_MAX_ANSWERS = 1024
_CACHED_SERVICES = 1024  # answers kept at most (the oldest go first)


class KubernetesDnsRegistry:
    """Instances of Kubernetes Services, read from DNS A/AAAA and SRV records.

    Args:
        namespace: the Services' namespace.
        clock: the answer cache and polls run on it.
        domain: the cluster domain.
        nameserver: resolver address, or ``None`` for the system resolver.
        nameserver_port: its port.
        port_name: the named port whose SRV records give the ports.
        default_port: port used when a Service has no SRV record.
        services: names :meth:`list_services` reports beside those looked up.
        max_ttl: longest seconds an answer is cached, whatever its TTL.
        timeout: seconds one lookup may take.
        poll_interval: seconds between a watcher's lookups.
    """

    name = "k8s"
    read_only = True

    def __init__(
        self,
        namespace: str,
        *,
        clock: Clock,
        domain: str = "cluster.local",
        nameserver: str | None = None,
        nameserver_port: int = 53,
        port_name: str = "http",
        default_port: int = 80,
        services: Sequence[str] = (),
        max_ttl: float = 30.0,
        timeout: float = 5.0,
        poll_interval: float = 2.0,
    ) -> None:
        check_service_name(namespace)
        if not _DOMAIN.fullmatch(domain):
            raise ValueError(f"not a DNS domain: {domain!r}")
        if not _PORT_NAME.fullmatch(port_name):
            raise ValueError(f"not a Kubernetes port name: {port_name!r}")
        self.namespace = namespace
        self.domain = domain
        self.port_name = port_name
        self.default_port = default_port
        self.nameserver = nameserver
        self.nameserver_port = nameserver_port
        self.max_ttl = max_ttl
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.where = f"{nameserver}:{nameserver_port}" if nameserver else "system resolver"
        self._clock = clock
        self._named = [check_service_name(s) for s in services]
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._cache: BoundedCache[str, list[Instance]] = BoundedCache(_CACHED_SERVICES, clock=clock)
        self._stopped = asyncio.Event()
        self._log = get_logger("lms.discovery", backend="k8s")

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> KubernetesDnsRegistry:
        """``k8s://namespace?...`` or ``dns://host:port/namespace?...``."""
        scheme, _, rest = url.partition("://")
        location = rest.partition("?")[0]
        nameserver: str | None = None
        port = 53
        if scheme.lower() == "dns":
            server, _, namespace = location.partition("/")
            host, sep, port_text = server.rpartition(":")
            if not sep:
                host, port_text = server, "53"
            if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise DiscoveryConfigError(f"dns:// needs resolver host[:port], got {server!r}")
            nameserver, port = host.strip("[]"), int(port_text)
        else:
            namespace = location
        namespace = namespace.strip("/") or "default"
        default_port = options.take("port") or "80"
        if not default_port.isdigit() or not 0 < int(default_port) < 65536:
            raise DiscoveryConfigError(f"port= must be 1-65535, got {default_port!r}")
        services = [s for s in (options.take("services") or "").split(",") if s]
        try:
            registry = cls(
                namespace,
                clock=options.clock,
                domain=options.take("domain") or "cluster.local",
                nameserver=nameserver,
                nameserver_port=port,
                port_name=options.take("port_name") or "http",
                default_port=int(default_port),
                services=services,
                max_ttl=options.seconds("max_ttl", 30.0),
                timeout=options.seconds("timeout", options.timeout),
                poll_interval=options.seconds("poll", options.poll_interval),
            )
        except ValueError as exc:
            raise DiscoveryConfigError(f"{scheme}://: {exc}") from None
        options.finish(scheme)
        return registry

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Make the resolver (the system one reads ``/etc/resolv.conf`` here)."""
        self._stopped.clear()
        if self._resolver is not None:
            return
        try:
            resolver = dns.asyncresolver.Resolver(configure=self.nameserver is None)
        except dns.exception.DNSException as exc:
            raise RegistryUnavailable(
                f"no system resolver: {exc}", backend=self.name, where=self.where
            ) from exc
        if self.nameserver is not None:
            resolver.nameservers = [self.nameserver]
            resolver.port = self.nameserver_port
        resolver.lifetime = self.timeout
        resolver.timeout = min(self.timeout, 2.0)
        self._resolver = resolver

    async def stop(self) -> None:
        """End running watches and forget cached answers."""
        self._stopped.set()
        self._cache.clear()
        self._resolver = None

    async def ping(self) -> None:
        """Ask for ``kubernetes.default.svc.<domain>``; any answer (even NXDOMAIN) will do.

        Raises:
            RegistryUnavailable: the resolver does not answer.
        """
        try:
            await self._query(f"kubernetes.default.svc.{self.domain}", "A")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return

    # -- writes are Kubernetes' ------------------------------------------

    async def register(self, instance: Instance, *, ttl: float) -> Registration:
        """Refused: Kubernetes registers pods (their readiness decides).

        Raises:
            RegistryReadOnly: always.
        """
        raise RegistryReadOnly(self.name, "Kubernetes owns registration (pod readiness)")

    async def deregister(self, instance: Instance) -> None:
        """Refused, like :meth:`register`.

        Raises:
            RegistryReadOnly: always.
        """
        raise RegistryReadOnly(self.name, "Kubernetes owns registration (pod readiness)")

    # -- reads -----------------------------------------------------------

    def service_name(self, service: str) -> str:
        """``service.namespace.svc.<domain>``."""
        return f"{service}.{self.namespace}.svc.{self.domain}"

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer:
        if self._resolver is None:
            raise RegistryUnavailable(
                "the DNS registry is not started", backend=self.name, where=self.where
            )
        try:
            return await self._resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            raise
        except dns.exception.DNSException as exc:
            raise RegistryUnavailable(
                f"DNS lookup of {name} {rdtype} failed: {exc}", backend=self.name, where=self.where
            ) from exc

    async def lookup(self, service: str, *, include_unhealthy: bool = False) -> list[Instance]:
        """The instances in DNS now (cached for the answer's TTL), sorted by id.

        DNS only lists ready pods, so every instance is healthy.

        Raises:
            RegistryUnavailable: the resolver does not answer.
        """
        check_service_name(service)
        cached = self._cache.get(service)
        if cached is not None:
            return list(cached)
        instances, ttl = await self._resolve(service)
        if ttl > 0:
            self._cache.set(service, instances, ttl=min(ttl, self.max_ttl))
        elif instances:
            self._cache.pop(service)
        if instances and service not in self._named:
            self._named.append(service)
        return list(instances)

    async def _resolve(self, service: str) -> tuple[list[Instance], float]:
        srv_name = f"_{self.port_name}._tcp.{self.service_name(service)}"
        try:
            answer = await self._query(srv_name, "SRV")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return await self._resolve_plain(service)
        records = list(answer)[:_MAX_ANSWERS]
        best = min(r.priority for r in records)
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else 0.0
        glue = _glue(answer)
        found: dict[str, Instance] = {}
        for record in (r for r in records if r.priority == best):
            target = record.target.to_text(omit_final_dot=True)
            addresses = glue.get(target.lower())
            if addresses is None:
                addresses, address_ttl = await self._addresses(target)
                ttl = min(ttl, address_ttl)
            for address in addresses:
                instance = Instance(
                    service,
                    f"{address}:{record.port}",
                    address,
                    record.port,
                    metadata={"dns_name": target[:1024]},
                )
                found[instance.id] = instance
        return sorted(found.values(), key=lambda i: i.id), ttl

    async def _resolve_plain(self, service: str) -> tuple[list[Instance], float]:
        addresses, ttl = await self._addresses(self.service_name(service))
        instances = [
            Instance(service, f"{a}:{self.default_port}", a, self.default_port) for a in addresses
        ]
        return sorted(instances, key=lambda i: i.id), ttl

    async def _addresses(self, name: str) -> tuple[list[str], float]:
        addresses: list[str] = []
        ttl = self.max_ttl
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._query(name, rdtype)
            except dns.resolver.NXDOMAIN:
                return [], min(ttl, self.poll_interval)
            except dns.resolver.NoAnswer:
                continue
            addresses += [r.address for r in list(answer)[:_MAX_ANSWERS]]
            if answer.rrset is not None:
                ttl = min(ttl, float(answer.rrset.ttl))
        return addresses, ttl

    async def list_services(self) -> list[str]:
        """Services named by ``services=`` and those found by earlier lookups."""
        return sorted(set(self._named))

    async def watch(self, service: str) -> AsyncGenerator[list[Instance], None]:
        """Yield the instances now and whenever a poll finds them changed."""
        check_service_name(service)
        last: list[Instance] | None = None
        while True:
            try:
                current = await self.lookup(service)
            except RegistryUnavailable as exc:
                self._log.warning("DNS poll failed", service=service, error=str(exc))
            else:
                if current != last:
                    last = current
                    yield current
            if not await sleep_unless_stopped(self._clock, self.poll_interval, self._stopped):
                return


def _glue(answer: dns.resolver.Answer) -> dict[str, list[str]]:
    """Addresses of SRV targets carried in the answer's additional section."""
    out: dict[str, list[str]] = {}
    for rrset in answer.response.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            name = rrset.name.to_text(omit_final_dot=True).lower()
            out.setdefault(name, []).extend(r.address for r in list(rrset)[:_MAX_ANSWERS])
    return out
