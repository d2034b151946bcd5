"""etcd v3 through its JSON gateway (``/v3/...``), with leases and a watch.

An instance is one key, ``<prefix>/<service>/<id>``, holding its JSON
record and attached to a lease of ``ttl`` seconds; the registration's
keepalive renews the lease, and a killed process's key vanishes when the
lease runs out. A revoked or expired lease is granted again and the key
written again.

Lookups read the service's key range. :meth:`EtcdRegistry.watch` reads the
range, then follows ``/v3/watch`` from the next revision (newline-separated
JSON messages, each bounded in size); when the stream breaks it moves to
the next endpoint, backs off on the injected clock, and reads the range
again, so nothing that happened meanwhile is missed.

Several endpoints (``etcd://h1:2379,h2:2379,h3:2379``): a request that
cannot connect, times out, or gets a 5xx from a member moves to the next
one. Why not an etcd client library: the maintained Python clients speak
gRPC (grpcio, a large native dependency) and the gateway needs only httpx,
which the chassis already has.

Verified against etcd 3.4 (Debian's ``etcd-server``): lease ``ID`` and
``TTL`` are strings of decimal digits; keepalive of a dead lease answers
without ``TTL``; a ``put`` with a dead lease fails with gRPC code 5.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import httpx
import orjson

from lms_shared.clock import Clock
from lms_shared.discovery._errors import (
    DiscoveryConfigError,
    InvalidRegistryData,
    RegistryUnavailable,
)
from lms_shared.discovery._instance import (
    Instance,
    check_service_name,
    decode_json,
    instance_from_record,
    instance_to_record,
)
from lms_shared.discovery._registry import BackendOptions, Registration, SnapshotChannel
from lms_shared.observability import get_logger

__all__ = ["EtcdRegistry"]

_MAX_RESPONSE = 16 * 1024 * 1024
_MAX_WATCH_LINE = 8 * 1024 * 1024
_NOT_FOUND = 5  # gRPC NOT_FOUND: "requested lease not found"
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 5.0


class _EtcdAnswer(Exception):
    """etcd answered with a gRPC error (kept inside this module)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise InvalidRegistryData("etcd sent a key or value that is not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise InvalidRegistryData("etcd sent a key or value that is not base64") from None


def _range_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    raw[-1] += 1  # prefixes end in "/", never 0xff
    return base64.b64encode(bytes(raw)).decode()


class EtcdRegistry:
    """Instances in etcd, kept by leases and followed by a watch.

    Args:
        endpoints: client URLs of the members (``http://127.0.0.1:2379``).
        clock: keepalives and reconnect backoff run on it.
        prefix: key prefix of the registry (``/lms/services``).
        timeout: seconds one request may take.
        watch_idle: seconds a watch stream may stay silent before it is
            re-opened (catches a member that vanished without closing).
    """

    name = "etcd"
    read_only = False

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        clock: Clock,
        prefix: str = "/lms/services",
        timeout: float = 5.0,
        watch_idle: float = 60.0,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.where = ",".join(self.endpoints)
        self.prefix = "/" + prefix.strip("/")
        self._clock = clock
        self._timeout = timeout
        self._watch_idle = watch_idle
        self._current = 0
        self._client: httpx.AsyncClient | None = None
        self._watches: set[tuple[asyncio.Task[None], SnapshotChannel]] = set()
        self._registrations: set[Registration] = set()
        self._log = get_logger("lms.discovery", backend="etcd")

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> EtcdRegistry:
        """``etcd://h1:2379[,h2:2379...]?prefix=/lms/services`` (``etcds://`` for TLS)."""
        scheme, _, rest = url.partition("://")
        hosts = rest.partition("?")[0].partition("/")[0]
        protocol = "https" if scheme.lower() == "etcds" else "http"
        endpoints = []
        for host in filter(None, hosts.split(",")):
            if "@" in host:
                raise DiscoveryConfigError("etcd credentials in the URL are not supported")
            name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
            if not name or not port.isdigit() or not 0 < int(port) < 65536:
                raise DiscoveryConfigError(f"etcd endpoint must be host:port, got {host!r}")
            endpoints.append(f"{protocol}://{host}")
        if not endpoints:
            raise DiscoveryConfigError("etcd:// needs at least one host:port")
        prefix = options.take("prefix") or "/lms/services"
        if not prefix.startswith("/") or len(prefix) > 200 or "//" in prefix:
            raise DiscoveryConfigError(f"prefix= must be an absolute key path, got {prefix!r}")
        registry = cls(
            endpoints,
            clock=options.clock,
            prefix=prefix,
            timeout=options.seconds("timeout", options.timeout),
            watch_idle=options.seconds("watch_idle", 60.0),
        )
        options.take("poll")  # etcd watches; a poll interval does not apply
        options.finish(scheme)
        return registry

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP connection pool (no request is made)."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, trust_env=False)

    async def stop(self) -> None:
        """End the watches, stop keepalives (leases then expire), close the connections."""
        for registration in list(self._registrations):
            await registration.stop_keepalive()  # entries expire on their own
        self._registrations.clear()
        watches, self._watches = self._watches, set()
        for task, channel in watches:
            task.cancel()
            channel.close()
        for task, _ in watches:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> None:
        """Ask a member for its status.

        Raises:
            RegistryUnavailable: no member answers.
        """
        await self._post("/v3/maintenance/status", {})

    # -- requests --------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RegistryUnavailable(
                "the etcd registry is not started", backend=self.name, where=self.where
            )
        return self._client

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        client = self._http()
        errors = []
        for _ in range(len(self.endpoints)):
            endpoint = self.endpoints[self._current]
            try:
                response = await client.post(endpoint + path, json=body)
            except httpx.HTTPError as exc:
                errors.append(f"{endpoint}: {type(exc).__name__}")
                self._rotate()
                continue
            if response.status_code >= 500:
                errors.append(f"{endpoint}: HTTP {response.status_code}")
                self._rotate()
                continue
            document = decode_json(response.content, what="etcd answer", max_bytes=_MAX_RESPONSE)
            if not isinstance(document, dict):
                raise InvalidRegistryData("etcd answered with something other than an object")
            if "error" in document or response.status_code >= 400:
                code = document.get("code")
                raise _EtcdAnswer(code if isinstance(code, int) else -1, str(document.get("error")))
            return document
        raise RegistryUnavailable(
            "no etcd member answered: " + "; ".join(errors), backend=self.name, where=self.where
        )

    def _rotate(self) -> None:
        self._current = (self._current + 1) % len(self.endpoints)

    async def _request(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._post(path, body)
        except _EtcdAnswer as exc:
            raise RegistryUnavailable(
                f"etcd refused {path}: {exc}", backend=self.name, where=self.where
            ) from exc

    def _key(self, service: str, instance_id: str = "") -> str:
        return f"{self.prefix}/{service}/{instance_id}"

    # -- writes ----------------------------------------------------------

    async def register(self, instance: Instance, *, ttl: float) -> Registration:
        """Grant a lease of ``ttl`` seconds (rounded up), put the record on it."""
        if instance.registered_at is None:
            instance = replace(instance, registered_at=self._clock.now())
        registration = Registration(
            instance,
            ttl=ttl,
            clock=self._clock,
            renew=self._renew,
            update=self._update,
            release=self._release,
        )
        await self._put_with_new_lease(registration, instance)
        registration.start_keepalive()
        self._registrations.add(registration)
        return registration

    async def _grant(self, ttl: float) -> str:
        answer = await self._request("/v3/lease/grant", {"TTL": max(1, math.ceil(ttl))})
        lease = answer.get("ID")
        if not isinstance(lease, str) or not lease.isdigit():
            raise InvalidRegistryData("etcd granted a lease without an ID")
        return lease

    async def _put(self, instance: Instance, lease: str) -> None:
        value = orjson.dumps(instance_to_record(instance)).decode()
        body = {
            "key": _b64(self._key(instance.service, instance.id)),
            "value": base64.b64encode(value.encode()).decode(),
            "lease": lease,
        }
        await self._post("/v3/kv/put", body)

    async def _put_with_new_lease(self, registration: Registration, instance: Instance) -> None:
        lease = await self._grant(registration.ttl)
        try:
            await self._put(instance, lease)
        except _EtcdAnswer as exc:
            raise RegistryUnavailable(
                f"etcd refused the registration: {exc}", backend=self.name, where=self.where
            ) from exc
        registration.handle = lease

    async def _renew(self, registration: Registration) -> None:
        answer = await self._request("/v3/lease/keepalive", {"ID": registration.handle})
        result = answer.get("result")
        ttl = result.get("TTL") if isinstance(result, dict) else None
        if not isinstance(ttl, str) or not ttl.isdigit() or int(ttl) <= 0:
            self._log.warning(
                "lease had expired; registering again", instance=registration.instance.key
            )
            await self._put_with_new_lease(registration, registration.instance)

    async def _update(self, registration: Registration, instance: Instance) -> None:
        try:
            await self._put(instance, str(registration.handle))
        except _EtcdAnswer as exc:
            if exc.code != _NOT_FOUND:
                raise RegistryUnavailable(
                    f"etcd refused the update: {exc}", backend=self.name, where=self.where
                ) from exc
            await self._put_with_new_lease(registration, instance)

    async def _release(self, registration: Registration) -> None:
        self._registrations.discard(registration)
        try:
            await self._post("/v3/lease/revoke", {"ID": registration.handle})
        except _EtcdAnswer as exc:
            if exc.code != _NOT_FOUND:
                raise RegistryUnavailable(
                    f"etcd refused to revoke the lease: {exc}", backend=self.name, where=self.where
                ) from exc
        await self.deregister(registration.instance)

    async def deregister(self, instance: Instance) -> None:
        """Delete the instance's key (its lease, if any, runs out on its own)."""
        await self._request(
            "/v3/kv/deleterange", {"key": _b64(self._key(instance.service, instance.id))}
        )

    # -- reads -----------------------------------------------------------

    async def _range(self, service: str) -> tuple[dict[str, Instance], int]:
        prefix = self._key(service)
        answer = await self._request(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": _range_end(prefix)}
        )
        found: dict[str, Instance] = {}
        for kv in answer.get("kvs") or ():
            decoded = self._decode(service, kv)
            if decoded is not None:
                found[decoded[0]] = decoded[1]
        header = answer.get("header")
        revision = header.get("revision", "0") if isinstance(header, dict) else "0"
        return found, int(revision) if isinstance(revision, str) and revision.isdigit() else 0

    def _decode(self, service: str, kv: object) -> tuple[str, Instance] | None:
        """``(key, instance)`` of one key-value, ``None`` (logged) when it is malformed."""
        try:
            if not isinstance(kv, dict):
                raise InvalidRegistryData("a key-value is not an object")
            key = _unb64(kv.get("key")).decode(errors="replace")
            record = decode_json(_unb64(kv.get("value")), what=f"etcd record {key[:200]}")
            instance = instance_from_record(record, what=f"etcd record {key[:200]}")
            if self._key(instance.service, instance.id) != key or instance.service != service:
                raise InvalidRegistryData(f"etcd record {key[:200]} names another instance")
        except InvalidRegistryData as exc:
            self._log.warning("skipping a malformed registry record", error=str(exc))
            return None
        return key, instance

    async def lookup(self, service: str, *, include_unhealthy: bool = False) -> list[Instance]:
        """The instances whose keys exist (their leases are live), sorted by id."""
        check_service_name(service)
        found, _ = await self._range(service)
        return _sorted(found.values(), include_unhealthy=include_unhealthy)

    async def list_services(self) -> list[str]:
        """Services that have at least one key under the prefix."""
        prefix = self.prefix + "/"
        answer = await self._request(
            "/v3/kv/range",
            {"key": _b64(prefix), "range_end": _range_end(prefix), "keys_only": True},
        )
        names = set()
        for kv in answer.get("kvs") or ():
            try:
                key = _unb64(kv.get("key") if isinstance(kv, dict) else None).decode()
            except (InvalidRegistryData, UnicodeDecodeError):
                continue
            service = key[len(prefix) :].partition("/")[0]
            with contextlib.suppress(ValueError):
                names.add(check_service_name(service))
        return sorted(names)

    # -- watch -----------------------------------------------------------

    async def watch(self, service: str) -> AsyncGenerator[list[Instance], None]:
        """The healthy instances now and after every change, from etcd's watch."""
        check_service_name(service)
        channel = SnapshotChannel()
        task = asyncio.get_running_loop().create_task(
            self._follow_service(service, channel), name=f"lms-discovery-etcd-watch:{service}"
        )
        entry = (task, channel)
        self._watches.add(entry)
        try:
            while (snapshot := await channel.get()) is not None:
                yield snapshot
        finally:
            self._watches.discard(entry)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow_service(self, service: str, channel: SnapshotChannel) -> None:
        failures = 0
        while True:
            try:
                found, revision = await self._range(service)
                channel.publish(_sorted(found.values()))
                if await self._stream(service, found, revision + 1, channel):
                    failures = 0
            except (RegistryUnavailable, InvalidRegistryData, httpx.HTTPError) as exc:
                self._log.info("etcd watch interrupted", service=service, error=str(exc))
            failures += 1
            self._rotate()
            await self._clock.sleep(min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** min(failures - 1, 10)))

    async def _stream(
        self, service: str, found: dict[str, Instance], start: int, channel: SnapshotChannel
    ) -> bool:
        """Follow one watch stream until it ends; ``True`` when it was created."""
        prefix = self._key(service)
        body = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _range_end(prefix),
                "start_revision": str(start),
            }
        }
        timeout = httpx.Timeout(self._timeout, read=self._watch_idle)
        created = False
        endpoint = self.endpoints[self._current]
        async with self._http().stream(
            "POST", endpoint + "/v3/watch", json=body, timeout=timeout
        ) as response:
            if response.status_code != 200:
                raise RegistryUnavailable(
                    f"watch refused: HTTP {response.status_code}", backend=self.name, where=endpoint
                )
            async for line in _lines(response):
                message = decode_json(line, what="etcd watch message", max_bytes=_MAX_WATCH_LINE)
                result = message.get("result") if isinstance(message, dict) else None
                if not isinstance(result, dict):
                    raise InvalidRegistryData(f"etcd watch sent an error: {str(message)[:200]}")
                created = created or bool(result.get("created"))
                if result.get("canceled"):
                    return created  # compacted or cancelled: read the range again
                for event in result.get("events") or ():
                    self._apply(service, found, event)
                channel.publish(_sorted(found.values()))
        return created

    def _apply(self, service: str, found: dict[str, Instance], event: object) -> None:
        kv = event.get("kv") if isinstance(event, dict) else None
        if not isinstance(kv, dict) or not isinstance(event, dict):
            raise InvalidRegistryData("etcd watch sent an event without a key-value")
        if event.get("type") == "DELETE":
            found.pop(_unb64(kv.get("key")).decode(errors="replace"), None)
            return
        decoded = self._decode(service, kv)
        if decoded is not None:
            found[decoded[0]] = decoded[1]


async def _lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """Newline-separated messages of a stream, each at most ``_MAX_WATCH_LINE`` bytes."""
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end]).strip()
            del buffer[: end + 1]
            if line:
                yield line
        if len(buffer) > _MAX_WATCH_LINE:
            raise InvalidRegistryData(f"an etcd watch message exceeds {_MAX_WATCH_LINE} bytes")
    if buffer.strip():
        yield bytes(buffer).strip()


def _sorted(instances: Any, *, include_unhealthy: bool = False) -> list[Instance]:
    return sorted((i for i in instances if include_unhealthy or i.healthy), key=lambda i: i.id)
