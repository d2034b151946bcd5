"""A fixed list of instances from the settings (read-only).

Two spellings of ``LMS_DISCOVERY_URL``:

* inline: ``static://identity=127.0.0.1:8001,127.0.0.1:8002;courses=[::1]:8000``
  (services separated by ``;``, instances by ``,``, IPv6 in brackets); each
  instance's id is its ``host:port``;
* JSON, for versions, zones and metadata: an object of service to a list of
  ``"host:port"`` strings or objects
  ``{"address", "port", "id"?, "version"?, "zone"?, "metadata"?}``.

Registering is refused with :class:`RegistryReadOnly`: the list is the
settings, edited where they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from lms_shared.discovery._errors import (
    DiscoveryConfigError,
    InvalidRegistryData,
    RegistryReadOnly,
)
from lms_shared.discovery._instance import Instance, check_service_name, decode_json
from lms_shared.discovery._registry import BackendOptions, Registration

__all__ = ["StaticRegistry", "parse_static"]

_MAX_STATIC_BYTES = 64 * 1024
_MAX_INSTANCES = 4096


def _split_endpoint(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"expected [ipv6]:port, got {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"expected host:port, got {text!r}")
    if not port_text.isdigit():
        raise ValueError(f"port must be a number in {text!r}")
    return host, int(port_text)


def _instance(service: str, entry: object) -> Instance:
    if isinstance(entry, str):
        address, port = _split_endpoint(entry)
        return Instance(service, f"{address}:{port}", address, port)
    if not isinstance(entry, Mapping):
        raise ValueError(f"an instance is 'host:port' or an object, got {type(entry).__name__}")
    unknown = set(entry) - {"address", "port", "id", "version", "zone", "metadata"}
    if unknown:
        raise ValueError(f"unknown instance fields {sorted(unknown)}")
    host, number = entry.get("address"), entry.get("port")
    if not isinstance(host, str) or not isinstance(number, int):
        raise ValueError("an instance object needs 'address' (string) and 'port' (integer)")
    metadata = entry.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ValueError("metadata must be an object")
    return Instance(
        service,
        entry.get("id") or f"{host}:{number}",
        host,
        number,
        version=entry.get("version"),
        zone=entry.get("zone"),
        metadata=metadata,
    )


def parse_static(text: str) -> dict[str, list[Instance]]:
    """Parse the inline or JSON list of static instances.

    Raises:
        DiscoveryConfigError: the text is too long, malformed, or names an
            instance twice; the message says where.
    """
    if len(text) > _MAX_STATIC_BYTES:
        raise DiscoveryConfigError(f"the static list is longer than {_MAX_STATIC_BYTES} bytes")
    raw: Mapping[str, Any]
    if text.lstrip().startswith("{"):
        try:
            document = decode_json(text, what="the static JSON list", max_bytes=_MAX_STATIC_BYTES)
        except InvalidRegistryData as exc:
            raise DiscoveryConfigError(str(exc)) from None
        if not isinstance(document, dict):
            raise DiscoveryConfigError("the static JSON list must be an object")
        raw = document
    else:
        body = text.removeprefix("static://")
        raw = {}
        for part in filter(None, (p.strip() for p in body.split(";"))):
            service, sep, endpoints = part.partition("=")
            if not sep:
                raise DiscoveryConfigError(f"expected service=host:port,... in {part[:60]!r}")
            raw[service.strip()] = [e for e in endpoints.split(",") if e.strip()]
    out: dict[str, list[Instance]] = {}
    count = 0
    for service, entries in raw.items():
        try:
            check_service_name(service)
            if not isinstance(entries, Sequence) or isinstance(entries, str):
                raise ValueError("expected a list of instances")
            instances = [_instance(service, entry) for entry in entries]
        except ValueError as exc:
            raise DiscoveryConfigError(f"static service {service[:63]!r}: {exc}") from None
        ids = [i.id for i in instances]
        if len(set(ids)) != len(ids):
            raise DiscoveryConfigError(f"static service {service!r} lists an instance twice")
        count += len(instances)
        if count > _MAX_INSTANCES:
            raise DiscoveryConfigError(f"more than {_MAX_INSTANCES} static instances")
        out[service] = sorted(instances, key=lambda i: i.id)
    return out


class StaticRegistry:
    """Instances named in the settings; never changes, never registers.

    Args:
        services: service name to its instances.
    """

    name = "static"
    read_only = True

    def __init__(self, services: Mapping[str, Sequence[Instance]]) -> None:
        self._services = {
            name: sorted(items, key=lambda i: i.id) for name, items in services.items()
        }
        self.where = "settings"
        self._stopped = asyncio.Event()

    @classmethod
    def from_url(cls, url: str, options: BackendOptions) -> StaticRegistry:
        """Build from the inline or JSON list (see the module docstring)."""
        return cls(parse_static(url))

    async def start(self) -> None:
        """Nothing to open."""
        self._stopped.clear()

    async def stop(self) -> None:
        """End running watches."""
        self._stopped.set()

    async def ping(self) -> None:
        """Always answers: the list is in memory."""

    async def register(self, instance: Instance, *, ttl: float) -> Registration:
        """Refused: static instances are edited in the settings.

        Raises:
            RegistryReadOnly: always.
        """
        raise RegistryReadOnly(self.name, "instances are listed in LMS_DISCOVERY_URL")

    async def deregister(self, instance: Instance) -> None:
        """Refused, like :meth:`register`.

        Raises:
            RegistryReadOnly: always.
        """
        raise RegistryReadOnly(self.name, "instances are listed in LMS_DISCOVERY_URL")

    async def lookup(self, service: str, *, include_unhealthy: bool = False) -> list[Instance]:
        """The listed instances of ``service`` (none when it is not listed)."""
        check_service_name(service)
        return list(self._services.get(service, ()))

    async def watch(self, service: str) -> AsyncGenerator[list[Instance], None]:
        """Yield the list once, then wait until the registry stops."""
        yield await self.lookup(service)
        await self._stopped.wait()

    async def list_services(self) -> list[str]:
        """The listed services that have instances."""
        return sorted(name for name, items in self._services.items() if items)
