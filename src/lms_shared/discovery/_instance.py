"""One running copy of a service (:class:`Instance`) and its stored record.

Backends that store instances as JSON (etcd) or read them from settings
(static) share :func:`instance_to_record` / :func:`instance_from_record`
and :func:`decode_json`: what another process wrote is untrusted, so its
size is bounded before parsing, orjson refuses nesting deeper than 1024
levels, and every field is checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

import orjson

from lms_shared.discovery._errors import InvalidRegistryData

__all__ = [
    "MAX_RECORD_BYTES",
    "Instance",
    "check_service_name",
    "decode_json",
    "instance_from_record",
    "instance_to_record",
]

MAX_RECORD_BYTES = 64 * 1024
"""Largest stored instance record accepted."""

_SERVICE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_ID = re.compile(r"[A-Za-z0-9_:@-][A-Za-z0-9._:@-]{0,127}")
_ADDRESS = re.compile(r"[A-Za-z0-9._:%-]{1,253}")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_MAX_METADATA = 64


def check_service_name(service: str) -> str:
    """Return ``service`` when it is a DNS label (what Kubernetes accepts too).

    Raises:
        ValueError: it is not ``[a-z0-9]([a-z0-9-]*[a-z0-9])?`` of at most 63 characters.
    """
    if not isinstance(service, str) or not _SERVICE.fullmatch(service):
        raise ValueError(f"service name must be a lower-case DNS label, got {service!r}")
    return service


@dataclass(frozen=True, slots=True)
class Instance:
    """One running copy of a service, as the registry knows it.

    Attributes:
        service: the service's name, a DNS label (``courses``).
        id: unique among the service's instances (``courses-7f9c``).
        address: host name or IP address other services connect to.
        port: TCP port.
        version: the version it runs (canary routing), if known.
        zone: the zone or rack it runs in (zone preference), if known.
        metadata: free string labels (read-only mapping).
        registered_at: when it was registered, if the backend knows.
        healthy: ``False`` when it said it is unhealthy; lookups leave it out.
        key: ``service/id`` (computed), what balancers key their state by.

    Raises:
        ValueError: a field is malformed (checked on construction).
    """

    service: str
    id: str
    address: str
    port: int
    version: str | None = None
    zone: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    registered_at: datetime | None = None
    healthy: bool = True
    key: str = field(init=False, repr=False, compare=False)
    """``service/id``: what balancers and caches key their state by."""

    def __post_init__(self) -> None:
        check_service_name(self.service)
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ValueError(f"instance id must match {_ID.pattern}, got {self.id!r}")
        if not isinstance(self.address, str) or not _ADDRESS.fullmatch(self.address):
            raise ValueError(f"instance address is not a host name or IP: {self.address!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"port must be an integer, got {self.port!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1-65535, got {self.port}")
        for name in ("version", "zone"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not _LABEL.fullmatch(value)):
                raise ValueError(f"{name} must match {_LABEL.pattern}, got {value!r}")
        if self.registered_at is not None and self.registered_at.tzinfo is None:
            raise ValueError("registered_at must be timezone-aware")
        if len(self.metadata) > _MAX_METADATA:
            raise ValueError(f"at most {_MAX_METADATA} metadata entries")
        for key, value in self.metadata.items():
            if not isinstance(key, str) or not _LABEL.fullmatch(key):
                raise ValueError(f"metadata key must match {_LABEL.pattern}, got {key!r}")
            if not isinstance(value, str) or len(value) > 1024:
                raise ValueError(f"metadata {key!r} must be a string of <= 1024 characters")
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        object.__setattr__(self, "key", f"{self.service}/{self.id}")

    @property
    def endpoint(self) -> str:
        """``host:port`` (IPv6 addresses in brackets), ready for a URL."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    def base_url(self, scheme: str = "http") -> str:
        """``scheme://host:port`` of this instance."""
        return f"{scheme}://{self.endpoint}"

    def with_health(self, healthy: bool) -> Instance:
        """A copy with another health state."""
        return replace(self, healthy=healthy)


def instance_to_record(instance: Instance) -> dict[str, Any]:
    """The JSON-ready record of an instance (what etcd stores)."""
    return {
        "service": instance.service,
        "id": instance.id,
        "address": instance.address,
        "port": instance.port,
        "version": instance.version,
        "zone": instance.zone,
        "metadata": dict(instance.metadata),
        "registered_at": (
            instance.registered_at.isoformat() if instance.registered_at is not None else None
        ),
        "healthy": instance.healthy,
    }


def decode_json(raw: bytes | str, *, what: str, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """Parse untrusted JSON with a size bound (orjson also bounds nesting at 1024).

    Args:
        raw: the document.
        what: what it is, for the error message (``"etcd record"``).
        max_bytes: larger documents are refused unread.

    Raises:
        InvalidRegistryData: too large, too deep, or not JSON.
    """
    if len(raw) > max_bytes:
        raise InvalidRegistryData(f"{what} is larger than {max_bytes} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRegistryData(f"{what} is not valid JSON: {exc}") from None


def instance_from_record(record: object, *, what: str = "instance record") -> Instance:
    """Build an :class:`Instance` from a decoded record, checking every field.

    Raises:
        InvalidRegistryData: a field is missing, of the wrong type, or malformed.
    """
    if not isinstance(record, dict):
        raise InvalidRegistryData(f"{what} is not a JSON object")
    unknown = set(record) - set(_FIELDS)
    if unknown:
        raise InvalidRegistryData(f"{what} has unknown fields: {sorted(unknown)[:5]}")
    try:
        registered = record.get("registered_at")
        when = datetime.fromisoformat(registered) if isinstance(registered, str) else None
        if registered is not None and when is None:
            raise ValueError("registered_at must be an ISO 8601 string")
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ValueError("metadata must be an object")
        healthy = record.get("healthy", True)
        if not isinstance(healthy, bool):
            raise ValueError("healthy must be a boolean")
        return Instance(
            service=record["service"],
            id=record["id"],
            address=record["address"],
            port=record["port"],
            version=record.get("version"),
            zone=record.get("zone"),
            metadata=metadata,
            registered_at=when,
            healthy=healthy,
        )
    except KeyError as exc:
        raise InvalidRegistryData(f"{what} lacks the field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidRegistryData(f"{what} is malformed: {exc}") from None


_FIELDS = (
    "service",
    "id",
    "address",
    "port",
    "version",
    "zone",
    "metadata",
    "registered_at",
    "healthy",
)
