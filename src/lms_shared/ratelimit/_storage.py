"""The rate-limit storage protocol, its errors, and backends chosen by URL.

A storage does one thing atomically: the GCRA step for one key
(:meth:`RateLimitStorage.acquire`). Backends are picked by the scheme of
``LMS_RATELIMIT_URL`` from an explicit table; drivers are imported only
when their backend is chosen:

==============================  ==========================================
URL                              backend
==============================  ==========================================
unset, ``memory://``             :class:`MemoryStorage` (this process only)
``redis://host:6379/0``          :class:`RedisStorage` (shared by replicas)
``rediss://...``                 the same over TLS
==============================  ==========================================

Redis URLs take two options of ours: ``prefix=`` (key prefix, default
``lms:rl:``) and ``clock=server`` (use the Redis server's clock instead of
the service's, when replicas' clocks cannot be trusted to agree).
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lms_shared.errors import SettingsError

__all__ = ["BACKENDS", "RateLimitStorage", "storage_from_url"]


@runtime_checkable
class RateLimitStorage(Protocol):
    """Where the theoretical arrival times (TATs) of client keys live."""

    name: str

    async def acquire(
        self, key: str, now_us: int, interval_us: int, tolerance_us: int, cost: int
    ) -> tuple[bool, int, int]:
        """One atomic GCRA step for ``key``.

        With ``tat = max(stored, now)`` and ``new = tat + interval * cost``:
        admit when ``new - now <= tolerance`` and store ``new`` (expiring
        once it is in the past); otherwise change nothing. ``cost`` 0 only
        reads.

        Args:
            key: the full storage key.
            now_us: the current time in microseconds; a negative value asks
                the storage to use its own clock.
            interval_us: microseconds one request costs.
            tolerance_us: ``burst * interval``.
            cost: requests this call counts for.

        Returns:
            ``(admitted, tat_us, now_us)``: the TAT after the call (the new
            one when admitted) and the time the storage used.

        Raises:
            StorageUnavailable: the storage failed.
        """
        ...

    async def reset(self, key: str) -> None:
        """Forget ``key`` (its quota is whole again)."""
        ...

    async def start(self) -> None:
        """Connect (called in the service lifespan)."""
        ...

    async def stop(self) -> None:
        """Release connections."""
        ...

    async def ping(self) -> None:
        """Raise :class:`StorageUnavailable` when the storage does not answer."""
        ...


BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("lms_shared.ratelimit._memory", "MemoryStorage", None),
    "redis": ("lms_shared.ratelimit._redis", "RedisStorage", "redis"),
    "rediss": ("lms_shared.ratelimit._redis", "RedisStorage", "redis"),
}
"""URL scheme to (module, class, extra to install)."""


def storage_from_url(url: str | None, *, prefix: str | None = None) -> RateLimitStorage:
    """The storage a ``LMS_RATELIMIT_URL`` names (memory when ``None``).

    Args:
        url: the URL.
        prefix: overrides the URL's ``prefix=`` option (tests use a unique one).

    Raises:
        SettingsError: unknown scheme, or its driver is not installed
            (the message names the extra to install).
    """
    if url is None or url in {"memory", "memory://"}:
        url = "memory://"
    scheme = urlsplit(url).scheme.lower()
    entry = BACKENDS.get(scheme)
    if entry is None:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        raise SettingsError([("LMS_RATELIMIT_URL", f"unknown scheme {scheme!r}; use {known}")])
    module_name, class_name, extra = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'lms-shared[{extra}]'" if extra else str(exc)
        raise SettingsError(
            [("LMS_RATELIMIT_URL", f"the {scheme} backend needs its driver: {hint}")]
        ) from exc
    if scheme == "memory":
        storage: RateLimitStorage = module.MemoryStorage()
        return storage
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    ours = {k: options.pop(k) for k in ("prefix", "clock") if k in options}
    if ours.get("clock", "service") not in {"service", "server"}:
        raise SettingsError([("LMS_RATELIMIT_URL", "clock= is 'service' or 'server'")])
    driver_url = urlunsplit(parts._replace(query=urlencode(options)))
    backend = getattr(module, class_name)
    remote: RateLimitStorage = backend(
        driver_url,
        prefix=prefix if prefix is not None else ours.get("prefix", "lms:rl:"),
        server_time=ours.get("clock") == "server",
    )
    return remote
