"""Other services, in process, under the real client: no servers in a service's tests.

:class:`FakeServices` stands in for the platform around the service under
test. Each fake service is an ASGI app (a FastAPI app, another service's
``app``, or a few routes) behind one or more fake instances in a
:class:`FakeRegistry`; :meth:`FakeServices.install` points the service's
clients at that registry and at a transport that delivers each call to
the app in process (``httpx.ASGITransport``). Discovery, balancing,
retries, breakers and deadlines all run as in production; only the
network is replaced::

    fakes = FakeServices()
    identity = fakes.add("identity", {"GET /v1/users/{id}": {"id": "42", "role": "student"}})
    fakes.install(service)
    ...
    identity.fail(503, times=2)             # the next two calls get a 503 problem
    identity.assert_called("GET", "/v1/users/42", times=3)   # two retries

Faults, each for the next ``times`` calls (``None``: until :meth:`FakeService.heal`),
optionally of one instance only: :meth:`~FakeService.fail` (a problem
answer), :meth:`~FakeService.delay` (latency on the fakes' clock),
:meth:`~FakeService.reset` (the connection drops: no answer),
:meth:`~FakeService.timeout` (the read times out) and
:meth:`~FakeService.down` (connections refused).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lms_shared.clock import Clock, SystemClock
from lms_shared.discovery import (
    Discovery,
    DiscoveryConfig,
    Instance,
    Registration,
    RegistryUnavailable,
    default_balancer,
)
from lms_shared.http import PROBLEM_CONTENT_TYPE
from lms_shared.service import Service
from lms_shared.types import ASGIApp

__all__ = ["FakeRegistry", "FakeService", "FakeServices", "RouteTable"]

Handler = Callable[[Request], Any]
RouteTable = Mapping[str, Any]
"""``{"GET /v1/users/{id}": answer}``: an answer is JSON-ready data (200), a
Starlette ``Response``, or a function of the request returning either (may be async)."""

_DOMAIN = "fake"


class FakeRegistry:
    """An in-memory, writable registry: the :class:`~lms_shared.discovery.Registry` protocol.

    Args:
        clock: stamps ``registered_at``.

    Attributes:
        unavailable: set it to make every call raise ``RegistryUnavailable``.
    """

    name = "fake"
    read_only = False
    where = "memory"

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._services: dict[str, dict[str, Instance]] = {}
        self._changed = asyncio.Event()
        self._version = 0
        self._stopped = False
        self.unavailable = False

    def _check(self) -> None:
        if self.unavailable:
            raise RegistryUnavailable(
                "the fake registry is unavailable", backend=self.name, where=self.where
            )

    def put(self, instance: Instance) -> None:
        """Add or replace an instance now (no lease)."""
        if instance.registered_at is None:
            instance = replace(instance, registered_at=self._clock.now())
        self._services.setdefault(instance.service, {})[instance.id] = instance
        self._bump()

    def remove(self, service: str, instance_id: str) -> None:
        """Remove an instance now (absent: nothing happens)."""
        if self._services.get(service, {}).pop(instance_id, None) is not None:
            self._bump()

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        """Nothing to open."""
        self._stopped = False

    async def stop(self) -> None:
        """End the watches."""
        self._stopped = True
        self._changed.set()

    async def ping(self) -> None:
        """Answer unless :attr:`unavailable`."""
        self._check()

    async def register(self, instance: Instance, *, ttl: float) -> Registration:
        """Store ``instance`` until the registration closes (no expiry)."""
        self._check()
        self.put(instance)

        async def renew(_: Registration) -> None:
            self._check()

        async def update(registration: Registration, new: Instance) -> None:
            self._check()
            self.put(new)

        async def release(registration: Registration) -> None:
            self.remove(registration.instance.service, registration.instance.id)

        stamped = self._services[instance.service][instance.id]
        return Registration(
            stamped, ttl=ttl, clock=self._clock, renew=renew, update=update, release=release
        )

    async def deregister(self, instance: Instance) -> None:
        """Remove ``instance``."""
        self._check()
        self.remove(instance.service, instance.id)

    async def lookup(self, service: str, *, include_unhealthy: bool = False) -> list[Instance]:
        """The instances of ``service``, sorted by id."""
        self._check()
        found = sorted(self._services.get(service, {}).values(), key=lambda i: i.id)
        return found if include_unhealthy else [i for i in found if i.healthy]

    async def watch(self, service: str) -> AsyncGenerator[list[Instance], None]:
        """The healthy instances now, then after every change, until stopped."""
        last: list[Instance] | None = None
        while not self._stopped:
            changed = self._changed
            current = [i for i in self._services.get(service, {}).values() if i.healthy]
            current.sort(key=lambda i: i.id)
            if current != last:
                last = current
                yield current
            await changed.wait()

    async def list_services(self) -> list[str]:
        """The services with at least one instance."""
        return sorted(name for name, items in self._services.items() if items)


@dataclass
class _Fault:
    kind: str  # "fail", "delay", "reset", "timeout", "down"
    times: int | None
    instance: str | None
    status: int = 503
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    seconds: float = 0.0


class FakeService:
    """One fake service: its app, its instances, the calls it got and the faults to play.

    Attributes:
        name: the service's name.
        app: the ASGI app answering its calls.
        instances: its fake instances (``identity-1`` at ``identity-1.fake:80``, ...).
        calls: every request that reached it (faults included), in order.
    """

    def __init__(self, name: str, app: ASGIApp, instances: list[Instance]) -> None:
        self.name = name
        self.app = app
        self.instances = instances
        self.calls: list[httpx.Request] = []
        self.calls_by_instance: dict[str, list[httpx.Request]] = {i.id: [] for i in instances}
        self._faults: list[_Fault] = []
        self._transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def __repr__(self) -> str:
        return (
            f"FakeService({self.name!r}, instances={len(self.instances)}, calls={len(self.calls)})"
        )

    # -- faults ------------------------------------------------------------

    def fail(
        self,
        status: int = 503,
        *,
        times: int | None = 1,
        code: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
        instance: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls with a problem of ``status``."""
        slug = code or ("service-unavailable" if status == 503 else f"http-{status}")
        body = {"type": f"https://lms.example.org/problems/{slug}", "title": slug,
                "status": status, "code": slug}  # fmt: skip
        if detail is not None:
            body["detail"] = detail
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        self._add(_Fault("fail", times, instance, status=status, body=body, headers=headers))

    def delay(self, seconds: float, *, times: int | None = 1, instance: str | None = None) -> None:
        """Wait ``seconds`` (on the fakes' clock) before answering the next ``times`` calls."""
        self._add(_Fault("delay", times, instance, seconds=seconds))

    def reset(self, *, times: int | None = 1, instance: str | None = None) -> None:
        """Drop the connection of the next ``times`` calls without an answer."""
        self._add(_Fault("reset", times, instance))

    def timeout(self, *, times: int | None = 1, instance: str | None = None) -> None:
        """Let the read of the next ``times`` calls time out."""
        self._add(_Fault("timeout", times, instance))

    def down(self, *, instance: str | None = None) -> None:
        """Refuse connections (of one instance, or all) until :meth:`heal`."""
        self._add(_Fault("down", None, instance))

    def heal(self) -> None:
        """Forget every fault."""
        self._faults.clear()

    def _add(self, fault: _Fault) -> None:
        if fault.instance is not None and fault.instance not in self.calls_by_instance:
            raise ValueError(f"{self.name} has no instance {fault.instance!r}")
        if fault.times is not None and fault.times < 1:
            raise ValueError("times must be >= 1 (or None: until heal())")
        self._faults.append(fault)

    def _take(self, instance: str) -> list[_Fault]:
        taken: list[_Fault] = []
        for fault in list(self._faults):
            if fault.instance not in (None, instance):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
            taken.append(fault)
            if fault.kind != "delay":
                break  # one answer-changing fault per call; delays add up before it
        return taken

    # -- assertions --------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[httpx.Request]:
        """The calls received, of ``method`` and ``path`` when given."""
        return [
            r
            for r in self.calls
            if (method is None or r.method == method.upper())
            and (path is None or r.url.path == path)
        ]

    def assert_called(
        self, method: str, path: str, *, times: int | None = None
    ) -> list[httpx.Request]:
        """The calls of ``method`` to ``path``; fail unless there were ``times`` (or some).

        Raises:
            AssertionError: no such call, or not ``times`` of them.
        """
        found = self.requests(method, path)
        seen = [f"{r.method} {r.url.path}" for r in self.calls[-10:]]
        if times is None and not found:
            raise AssertionError(f"{self.name} got no {method} {path}; last calls: {seen}")
        if times is not None and len(found) != times:
            raise AssertionError(
                f"{self.name} got {len(found)} x {method} {path}, expected {times}; "
                f"last calls: {seen}"
            )
        return found

    def assert_not_called(self, method: str | None = None, path: str | None = None) -> None:
        """Fail if any call (of ``method`` to ``path``) reached the service."""
        found = self.requests(method, path)
        if found:
            raise AssertionError(f"{self.name} got {len(found)} unexpected call(s)")

    # -- serving -----------------------------------------------------------

    async def handle(self, instance: str, request: httpx.Request, clock: Clock) -> httpx.Response:
        """Record the call, play the faults, then let the app answer."""
        self.calls.append(request)
        self.calls_by_instance[instance].append(request)
        for fault in self._take(instance):
            if fault.kind == "delay":
                await clock.sleep(fault.seconds)
            elif fault.kind == "fail":
                return httpx.Response(
                    fault.status,
                    headers={"content-type": PROBLEM_CONTENT_TYPE, **(fault.headers or {})},
                    content=orjson.dumps(fault.body),
                    request=request,
                )
            elif fault.kind == "reset":
                raise httpx.ReadError("connection reset by peer (fake)", request=request)
            elif fault.kind == "timeout":
                raise httpx.ReadTimeout("read timed out (fake)", request=request)
            elif fault.kind == "down":
                raise httpx.ConnectError("connection refused (fake)", request=request)
        return await self._transport.handle_async_request(request)


class _Router(httpx.AsyncBaseTransport):
    """Delivers each request to the fake service and instance its host names."""

    def __init__(self, fakes: FakeServices) -> None:
        self.fakes = fakes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        found = self.fakes.by_host.get(request.url.host)
        if found is None:
            raise httpx.ConnectError(f"no fake service at {request.url.host}", request=request)
        service, instance = found
        await request.aread()  # recorded calls keep their body
        return await service.handle(instance, request, self.fakes.clock)


def _routes_app(table: RouteTable) -> ASGIApp:
    routes = []
    for spec, answer in table.items():
        method, _, path = spec.partition(" ")
        if not path.startswith("/"):
            raise ValueError(f"a route is 'METHOD /path', got {spec!r}")
        routes.append(Route(path, _endpoint(answer), methods=[method.upper()]))
    return Starlette(routes=routes)


def _endpoint(answer: Any) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        value = answer(request) if callable(answer) else answer
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, Response):
            return value
        return JSONResponse(value)

    return endpoint


class FakeServices:
    """The services around the one under test, by logical name.

    Args:
        clock: the clock of fault delays (the system clock by default;
            the service's :class:`~lms_shared.testing.ManualClock` to drive them).

    Attributes:
        registry: the :class:`FakeRegistry` the fake instances are in.
        transport: delivers calls to the fake services (``httpx`` transport).
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.registry = FakeRegistry(clock=self.clock)
        self.transport = _Router(self)
        self.services: dict[str, FakeService] = {}
        self.by_host: dict[str, tuple[FakeService, str]] = {}

    def __getitem__(self, name: str) -> FakeService:
        return self.services[name]

    def add(
        self,
        name: str,
        app: ASGIApp | Service | RouteTable,
        *,
        instances: int = 1,
        version: str | None = None,
        zone: str | None = None,
    ) -> FakeService:
        """Add a fake service answering with ``app`` behind ``instances`` instances.

        Args:
            name: the logical name callers use (``service.client(name)``).
            app: an ASGI app, a :class:`~lms_shared.Service` (its ``app``;
                its lifespan is not run), or a :data:`RouteTable`.
            instances: how many instances (each ``<name>-<n>``).
            version: the instances' version (canary routing).
            zone: their zone.

        Raises:
            ValueError: the name is taken, or ``instances`` < 1.
        """
        if name in self.services:
            raise ValueError(f"a fake {name!r} exists already")
        if instances < 1:
            raise ValueError("a fake service needs at least one instance")
        asgi: ASGIApp
        if isinstance(app, Mapping):
            asgi = _routes_app(app)
        else:
            asgi = app.app if isinstance(app, Service) else app
        made = [
            Instance(
                name,
                f"{name}-{n}",
                f"{name}-{n}.{_DOMAIN}",
                80,
                version=version,
                zone=zone,
                registered_at=datetime.now(UTC),
            )
            for n in range(1, instances + 1)
        ]
        fake = FakeService(name, asgi, made)
        self.services[name] = fake
        for instance in made:
            self.by_host[instance.address] = (fake, instance.id)
            self.registry.put(instance)
        return fake

    def install(self, service: Service) -> Discovery:
        """Route ``service``'s clients to the fakes (before its first call).

        Returns:
            The discovery facade its clients now use: the fake registry,
            with the balancers ``service``'s settings describe.
        """
        config = DiscoveryConfig.from_settings(service.settings)
        discovery = Discovery(
            self.registry,
            clock=service.clock,
            balancer_factory=lambda _: default_balancer(config, clock=service.clock),
        )
        service.clients.use(discovery=discovery, transport=self.transport)
        return discovery
