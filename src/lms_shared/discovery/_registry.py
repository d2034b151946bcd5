"""The registry protocol, registrations kept alive, and backends chosen by URL.

A registry stores which instances of which services run, and where. Every
backend passes one conformance suite (``tests/discovery``) against the real
server. The backend is picked by ``LMS_DISCOVERY_URL`` from an explicit
table; a driver is imported only when its backend is chosen:

=================================================  =================================
URL                                                 backend
=================================================  =================================
unset, ``local://``, ``local:///path/file.sqlite3``  :class:`LocalRegistry` (one machine)
``static://identity=127.0.0.1:8001,h:8002;...``     :class:`StaticRegistry` (read-only)
``{"identity": ["127.0.0.1:8001", {...}]}``         the same, as JSON
``etcd://h1:2379,h2:2379?prefix=/lms/services``     :class:`EtcdRegistry` (``etcds://``: TLS)
``k8s://namespace?domain=cluster.local``            :class:`KubernetesDnsRegistry`, system resolver
``dns://127.0.0.1:5353/namespace?...``              the same, asking this resolver
=================================================  =================================

Every URL also takes ``poll=`` (seconds between polls where there is no
watch) and ``timeout=`` (seconds one request may take).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from lms_shared.clock import Clock
from lms_shared.discovery._errors import (
    DiscoveryConfigError,
    DiscoveryError,
    RegistryUnavailable,
)
from lms_shared.discovery._instance import Instance
from lms_shared.observability import get_logger

__all__ = [
    "BACKENDS",
    "BackendOptions",
    "Registration",
    "Registry",
    "SnapshotChannel",
    "registry_from_url",
    "sleep_unless_stopped",
]


@runtime_checkable
class Registry(Protocol):
    """Where instances register and are looked up.

    Attributes:
        name: the backend's name (``local``, ``static``, ``etcd``, ``k8s``).
        read_only: ``True`` when :meth:`register`, :meth:`deregister` and
            health changes raise :class:`RegistryReadOnly` (static lists,
            Kubernetes DNS: the registration is owned elsewhere).
        where: the file or endpoints, for messages (no credentials).
    """

    name: str
    read_only: bool
    where: str

    async def start(self) -> None:
        """Open files and connections (called in the service lifespan)."""
        ...

    async def stop(self) -> None:
        """Close them; running :meth:`watch` iterators end."""
        ...

    async def ping(self) -> None:
        """Raise :class:`RegistryUnavailable` when the registry does not answer."""
        ...

    async def register(self, instance: Instance, *, ttl: float) -> Registration:
        """Store ``instance`` for ``ttl`` seconds and keep it alive until closed.

        Args:
            instance: the instance; ``registered_at`` is set when ``None``.
            ttl: seconds the entry lives without a renewal (lease or heartbeat);
                the returned registration renews it every ``ttl / 3``.

        Raises:
            RegistryReadOnly: the backend does not take registrations.
            RegistryUnavailable: the registry does not answer.
        """
        ...

    async def deregister(self, instance: Instance) -> None:
        """Remove ``instance`` (by service and id); absent instances are ignored."""
        ...

    async def lookup(self, service: str, *, include_unhealthy: bool = False) -> list[Instance]:
        """The live instances of ``service``, sorted by id.

        Expired entries are never returned; unhealthy ones only with
        ``include_unhealthy``.

        Raises:
            RegistryUnavailable: the registry does not answer.
        """
        ...

    def watch(self, service: str) -> AsyncGenerator[list[Instance], None]:
        """The healthy instances of ``service``: now, then after every change.

        Backends with a native watch (etcd) stream changes and reconnect
        with backoff; the others poll. Transient failures do not end the
        iteration (the last snapshot stays true as far as is known); it
        ends when the registry stops.
        """
        ...

    async def list_services(self) -> list[str]:
        """The names of the services with at least one live instance, sorted."""
        ...


class Registration:
    """One registered instance, renewed in the background until :meth:`close`.

    A backend makes it in :meth:`Registry.register`; the keepalive task
    renews the entry every ``ttl / 3`` seconds of the injected clock and,
    after a failed renewal, retries after ``ttl / 6``. When the entry was
    lost (expired while the registry was unreachable) the backend writes
    it again.

    Attributes:
        instance: the instance as stored (its ``healthy`` follows :meth:`set_healthy`).
        ttl: seconds the entry lives without a renewal.
        renewals: successful renewals so far.
        failures: consecutive failed renewals (0 after a success).
        handle: the backend's own reference (an etcd lease id).
    """

    def __init__(
        self,
        instance: Instance,
        *,
        ttl: float,
        clock: Clock,
        renew: Callable[[Registration], Awaitable[None]],
        update: Callable[[Registration, Instance], Awaitable[None]],
        release: Callable[[Registration], Awaitable[None]],
        handle: Any = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl}")
        self.instance = instance
        self.ttl = ttl
        self.handle = handle
        self.renewals = 0
        self.failures = 0
        self._clock = clock
        self._renew = renew
        self._update = update
        self._release = release
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._log = get_logger("lms.discovery", service=instance.service, instance=instance.id)

    @property
    def active(self) -> bool:
        """Whether the keepalive runs (``False`` once closed)."""
        return self._task is not None and not self._task.done()

    def start_keepalive(self) -> None:
        """Start the background renewals (the backend calls this once)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._keepalive(), name=f"lms-discovery-keepalive:{self.instance.key}"
            )

    async def renew(self) -> None:
        """Renew the entry now (the keepalive does this on its own).

        Raises:
            RegistryUnavailable: the registry does not answer.
        """
        await self._renew(self)
        self.renewals += 1
        self.failures = 0

    async def set_healthy(self, healthy: bool) -> None:
        """Store a new health state; unhealthy instances leave lookups.

        Raises:
            RegistryUnavailable: the registry does not answer.
        """
        new = self.instance.with_health(healthy)
        await self._update(self, new)
        self.instance = new

    async def stop_keepalive(self) -> None:
        """Stop renewing but leave the entry: it expires after its ttl.

        The registry does this to the registrations still open when it
        stops; a test does it to play a process that hangs.
        """
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def close(self) -> None:
        """Stop renewing and remove the entry (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self.stop_keepalive()
        await self._release(self)

    async def _keepalive(self) -> None:
        interval = self.ttl / 3
        delay = interval
        while True:
            await self._clock.sleep(delay)
            try:
                await self.renew()
            except (DiscoveryError, RegistryUnavailable) as exc:
                self.failures += 1
                self._log.warning("registration renewal failed", error=str(exc))
                delay = interval / 2
            else:
                delay = interval


async def sleep_unless_stopped(clock: Clock, seconds: float, stopped: asyncio.Event) -> bool:
    """Sleep ``seconds`` on ``clock``; return ``False`` at once when ``stopped`` is set."""
    if stopped.is_set():
        return False
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    waiter = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waiter):
            task.cancel()
        await asyncio.gather(sleeper, waiter, return_exceptions=True)
    return not stopped.is_set()


class BackendOptions:
    """The options every backend's ``from_url`` receives.

    Attributes:
        clock: the service's clock.
        state_dir: folder of the embedded backend.
        poll_interval: seconds between polls where there is no watch.
        timeout: seconds one request to the registry may take.
        query: the URL's remaining query options (each backend takes its own).
    """

    def __init__(
        self, *, clock: Clock, state_dir: Path, poll_interval: float, timeout: float
    ) -> None:
        self.clock = clock
        self.state_dir = state_dir
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.query: dict[str, str] = {}

    def take(self, name: str) -> str | None:
        """Remove and return one query option."""
        return self.query.pop(name, None)

    def seconds(self, name: str, default: float) -> float:
        """A query option in seconds (positive, at most an hour)."""
        raw = self.take(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise DiscoveryConfigError(
                f"{name}= must be a number of seconds, got {raw!r}"
            ) from None
        if not 0 < value <= 3600:
            raise DiscoveryConfigError(f"{name}= must be in (0, 3600] seconds, got {raw!r}")
        return value

    def finish(self, scheme: str) -> None:
        """Refuse options no one took (a typo must not pass silently)."""
        if self.query:
            raise DiscoveryConfigError(
                f"unknown option(s) for {scheme}://: {', '.join(sorted(self.query))}"
            )


BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "local": ("lms_shared.discovery._local", "LocalRegistry", None),
    "static": ("lms_shared.discovery._static", "StaticRegistry", None),
    "etcd": ("lms_shared.discovery._etcd", "EtcdRegistry", None),
    "etcds": ("lms_shared.discovery._etcd", "EtcdRegistry", None),
    "k8s": ("lms_shared.discovery._dns", "KubernetesDnsRegistry", "kubernetes"),
    "dns": ("lms_shared.discovery._dns", "KubernetesDnsRegistry", "kubernetes"),
}
"""URL scheme to (module, class, extra to install); the class has ``from_url``."""

_MAX_URL = 64 * 1024


def registry_from_url(
    url: str | None,
    *,
    clock: Clock,
    state_dir: Path,
    poll_interval: float = 2.0,
    timeout: float = 5.0,
) -> Registry:
    """The registry an ``LMS_DISCOVERY_URL`` names (the local one when unset).

    Nothing is opened here: files and connections open in ``start()``.

    Args:
        url: the URL, or an inline JSON object of static instances.
        clock: the service's clock (leases, heartbeats, polls, backoff).
        state_dir: folder of the local backend's SQLite file.
        poll_interval: default seconds between polls (``poll=`` overrides).
        timeout: default seconds per request (``timeout=`` overrides).

    Raises:
        DiscoveryConfigError: unknown scheme, bad option, or a driver that
            is not installed (the message names the extra).
    """
    raw = (url or "").strip()
    if len(raw) > _MAX_URL:
        raise DiscoveryConfigError(f"longer than {_MAX_URL} characters")
    options = BackendOptions(
        clock=clock, state_dir=state_dir, poll_interval=poll_interval, timeout=timeout
    )
    if raw.startswith("{"):
        scheme = "static"
    elif not raw:
        scheme, raw = "local", "local://"
    else:
        scheme, sep, _ = raw.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in BACKENDS:
            known = ", ".join(f"{s}://" for s in BACKENDS)
            shown = scheme if sep else raw[:20]
            raise DiscoveryConfigError(f"unknown registry {shown!r}; use {known} or a JSON object")
        if scheme != "static":
            try:
                query = urlsplit(raw).query
                options.query = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))
            except ValueError as exc:
                raise DiscoveryConfigError(f"cannot parse the URL: {exc}") from None
    module_name, class_name, extra = BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'lms-shared[{extra}]'" if extra else str(exc)
        raise DiscoveryConfigError(f"the {scheme} registry needs its driver: {hint}") from exc
    factory = getattr(module, class_name).from_url
    registry: Registry = factory(raw, options)
    return registry


class SnapshotChannel:
    """The newest snapshot from a background task to a watch iterator.

    Only the latest value is kept (a slow reader skips intermediate ones,
    which a snapshot makes harmless); :meth:`close` ends the reader.
    """

    def __init__(self) -> None:
        self._value: list[Instance] | None = None
        self._last: list[Instance] | None = None
        self._ready = asyncio.Event()
        self._closed = False

    def publish(self, instances: list[Instance]) -> None:
        """Offer a snapshot; equal to the last one published, it is dropped."""
        if instances == self._last:
            return
        self._last = instances
        self._value = instances
        self._ready.set()

    def close(self) -> None:
        """Wake the reader and end it."""
        self._closed = True
        self._ready.set()

    async def get(self) -> list[Instance] | None:
        """The next snapshot, or ``None`` once closed."""
        await self._ready.wait()
        if self._closed:
            return None
        self._ready.clear()
        value, self._value = self._value, None
        return value
