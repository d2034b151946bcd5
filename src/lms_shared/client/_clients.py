"""``service.clients``: the service's clients of other services, one per target.

A lifecycle component (``clients``): nothing opens when it starts; each
:class:`~lms_shared.client.ServiceClient` opens its connection pool on its
first call, and every pool is closed when the service stops. It holds
what the clients share: the breakers (one :class:`BreakerRegistry`, per
service and per instance), the service's credentials for outgoing calls,
the discovery facade, the ``propagators`` hook and, in tests, a transport
that replaces the network (:meth:`Clients.use`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import httpx

from lms_shared.client._client import Propagator, ServiceClient
from lms_shared.client._config import DEFAULT_BREAKER, ClientConfig
from lms_shared.clock import Clock
from lms_shared.discovery import Discovery
from lms_shared.resilience import BreakerRegistry
from lms_shared.settings import Settings

__all__ = ["Clients"]

_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

Credentials = Callable[[str], httpx.Auth | None]


class Clients:
    """The clients of one service, by the name of the service they call.

    Args:
        caller: this service's name (``user-agent``, logs).
        version: its version.
        settings: where each target's :class:`ClientConfig` is read from.
        clock: the service clock.
        credentials: the ``httpx.Auth`` for calls to a service
            (``service.auth.outgoing``); ``None`` for no credentials.
        discovery: returns the discovery facade (``service.discovery``),
            asked only for targets that are looked up.

    Attributes:
        breakers: every breaker of every client (``identity``,
            ``identity/10.0.0.7:8000``), for metrics and tests.
        propagators: called with the headers of every attempt, to add
            their own (the trace-context hook of observability).
    """

    name = "clients"

    def __init__(
        self,
        caller: str,
        version: str,
        *,
        settings: Settings,
        clock: Clock,
        credentials: Credentials | None = None,
        discovery: Callable[[], Discovery] | None = None,
    ) -> None:
        self.caller = caller
        self.version = version
        self.settings = settings
        self.clock = clock
        self.breakers = BreakerRegistry(clock=clock, config=DEFAULT_BREAKER)
        self.propagators: list[Propagator] = []
        self._credentials = credentials
        self._discovery = discovery
        self._adopted: Discovery | None = None
        self._adopted_started = False
        self._lock = asyncio.Lock()
        self._transport: httpx.AsyncBaseTransport | None = None
        self._transports: dict[str, httpx.AsyncBaseTransport] = {}
        self._clients: dict[str, ServiceClient] = {}

    def __repr__(self) -> str:
        return f"Clients({self.caller!r}, {sorted(self._clients)})"

    def __iter__(self) -> Any:
        return iter(tuple(self._clients.values()))

    def get(
        self,
        service: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> ServiceClient:
        """The client of ``service``, made on first use from the settings and ``options``.

        Asked again without options, the same client; with options, they
        must be the ones it was made with.

        Args:
            service: the called service's name (a DNS label).
            transport: an httpx transport for this target instead of the
                network (tests: ``httpx.ASGITransport(app=other.app)``).
            **options: :class:`ClientConfig` knobs (``timeout=2.0``,
                ``retries=0``, ``url="http://..."``, ``hedge_delay=0.05``...).

        Raises:
            ValueError: a malformed name or knob, or options that differ
                from those the client was first made with.
            TypeError: an unknown option.
        """
        if not _NAME.fullmatch(service):
            raise ValueError(f"a service name is a lower-case DNS label, got {service!r}")
        if transport is not None:
            self._transports[service] = transport
        client = self._clients.get(service)
        if client is not None and not options:
            return client
        config = ClientConfig.from_settings(self.settings, service).with_options(**options)
        if client is not None:
            if config != client.config:
                raise ValueError(f"the client of {service!r} was already made with other options")
            return client
        self.breakers.configs[service] = config.breaker
        client = self._clients[service] = ServiceClient(service, config, pool=self)
        if config.base_url(service) is None and self._adopted is None:
            self._ensure_discovery_exists()
        return client

    # -- what the clients share ---------------------------------------------

    def credentials(self, service: str) -> httpx.Auth | None:
        """The credentials of calls to ``service`` (looked up when its pool opens)."""
        return None if self._credentials is None else self._credentials(service)

    def transport_for(self, service: str) -> httpx.AsyncBaseTransport | None:
        """The transport of calls to ``service``: its own, the shared one, or the network."""
        return self._transports.get(service, self._transport)

    def use(
        self,
        *,
        discovery: Discovery | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Replace the discovery facade and/or the network (test doubles do this).

        A discovery given here is started on the first lookup and stopped
        with the clients. Call it before the first call of each client.
        """
        if discovery is not None:
            self.adopt(discovery)
        if transport is not None:
            self._transport = transport

    def adopt(self, discovery: Discovery) -> None:
        """Look services up in ``discovery``, which the clients start and stop themselves."""
        self._adopted = discovery
        self._adopted_started = False

    def _ensure_discovery_exists(self) -> None:
        if self._discovery is not None:
            self._discovery()  # made now, so the service starts it with its components

    async def discovery(self) -> Discovery:
        """The discovery facade, started.

        Raises:
            RuntimeError: the clients have no discovery (only fixed URLs).
        """
        adopted = self._adopted
        if adopted is not None:
            if not self._adopted_started:
                async with self._lock:
                    if not self._adopted_started:
                        await adopted.start()
                        self._adopted_started = True
            return adopted
        if self._discovery is None:
            raise RuntimeError("these clients have no discovery: give each target a url=")
        return self._discovery()

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Nothing to open: each client opens its pool on its first call."""

    async def stop(self) -> None:
        """Close every client's pool, and a discovery facade the clients started."""
        for client in tuple(self._clients.values()):
            await client.aclose()
        await self.breakers.aclose()
        if self._adopted is not None and self._adopted_started:
            self._adopted_started = False
            await self._adopted.stop()
