"""Where verification keys come from: a fixed set, or a JWKS URL kept fresh.

:class:`StaticKeys` holds keys given in code (the HS256 secret, a test
keypair, the identity service's own signer). :class:`JwksKeys` is a
lifecycle component that fetches a JWKS document with httpx when the
service starts, refreshes it in the background every ``refresh_interval``
seconds of the injected clock, and refetches early when a token names an
unknown ``kid`` (a key rotated in) -- at most once per
``min_refetch_interval`` (once a second while no key is loaded at all),
and one fetch at a time, so a flood of tokens
with made-up key ids costs one request to the identity service, not one
each. A failed fetch keeps the keys already loaded. Documents are bounded
(size, number of keys); a key that cannot be used is skipped and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Iterable
from typing import Protocol

import httpx

from lms_shared.auth._compact import strict_json
from lms_shared.auth._errors import FetchFailed
from lms_shared.auth._keys import VerificationKey, key_from_jwk
from lms_shared.clock import Clock
from lms_shared.observability import get_logger

__all__ = ["JwksKeys", "KeySource", "StaticKeys"]

OnChange = Callable[[frozenset[str]], None]


class KeySource(Protocol):
    """What a verifier asks for keys."""

    @property
    def loaded(self) -> bool:
        """Whether any key is available (otherwise tokens get a 503, not a 401)."""
        ...

    def find(self, kid: str | None) -> VerificationKey | None:
        """The key with this id, from memory, without waiting."""
        ...

    async def refresh_for(self, kid: str | None) -> VerificationKey | None:
        """The key with this id, fetching again if allowed; ``None`` if unknown."""
        ...


class StaticKeys:
    """A fixed set of keys; a token without ``kid`` matches when there is only one.

    Args:
        keys: the verification keys.

    Raises:
        ValueError: two keys share a ``kid``, or there is no key.
    """

    def __init__(self, keys: Iterable[VerificationKey]) -> None:
        self.keys = tuple(keys)
        if not self.keys:
            raise ValueError("StaticKeys needs at least one key")
        self._by_kid = {key.kid: key for key in self.keys}
        if len(self._by_kid) != len(self.keys):
            raise ValueError("two keys share a kid")

    @property
    def loaded(self) -> bool:
        """Always ``True``."""
        return True

    def find(self, kid: str | None) -> VerificationKey | None:
        """The key named ``kid``, or the only key for a token without one."""
        if kid is None and len(self.keys) == 1:
            return self.keys[0]
        return self._by_kid.get(kid)

    async def refresh_for(self, kid: str | None) -> VerificationKey | None:
        """Same as :meth:`find`: a fixed set has nothing to fetch."""
        return self.find(kid)


class JwksKeys:
    """Keys of a JWKS URL: fetched at start-up, refreshed, refetched on unknown kid.

    Args:
        url: the JWKS document, e.g. ``http://identity:8000/.well-known/jwks.json``.
        algorithms: algorithms the keys may be used with.
        clock: drives the refresh schedule and the refetch rate limit.
        refresh_interval: seconds between background refreshes.
        min_refetch_interval: least seconds between two fetches caused by
            unknown key ids.
        timeout: seconds one fetch may take.
        max_keys: the largest number of keys a document may hold.
        max_bytes: the largest document accepted.
        transport: an httpx transport (tests); the network by default.
    """

    def __init__(
        self,
        url: str,
        *,
        algorithms: Collection[str],
        clock: Clock,
        refresh_interval: float = 300.0,
        min_refetch_interval: float = 30.0,
        timeout: float = 5.0,
        max_keys: int = 32,
        max_bytes: int = 64 * 1024,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if refresh_interval <= 0 or min_refetch_interval < 0 or timeout <= 0:
            raise ValueError("JWKS intervals and timeout must be positive")
        self.name = "auth-jwks"
        self.url = url
        self.algorithms = frozenset(algorithms)
        self.clock = clock
        self.refresh_interval = refresh_interval
        self.min_refetch_interval = min_refetch_interval
        self.timeout = timeout
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.fetches = 0
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._keys: dict[str, VerificationKey] = {}
        self._last_attempt: float | None = None
        self._last_success: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._listeners: list[OnChange] = []
        self.log = get_logger("lms.auth.jwks", url=url)

    @property
    def loaded(self) -> bool:
        """Whether a document has been loaded."""
        return bool(self._keys)

    @property
    def kids(self) -> frozenset[str]:
        """The key ids loaded now."""
        return frozenset(self._keys)

    def on_change(self, listener: OnChange) -> None:
        """Call ``listener(removed_kids)`` after each refresh that dropped keys."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Open the HTTP client, fetch once, and start refreshing in the background.

        A failed first fetch does not stop the service: readiness fails
        until a later fetch succeeds (retried with backoff).
        """
        self._client = httpx.AsyncClient(timeout=self.timeout, transport=self._transport)
        with contextlib.suppress(FetchFailed):
            await self.refresh()
        self._task = asyncio.create_task(self._run(), name="lms-auth-jwks-refresh")
        await asyncio.sleep(0)  # the schedule starts now: the first sleep is registered

    async def stop(self) -> None:
        """Stop refreshing and close the HTTP client."""
        if self._inflight is not None:
            self._inflight.cancel()
            # a failed fetch was logged when it failed
            with contextlib.suppress(asyncio.CancelledError, FetchFailed):
                await self._inflight
            self._inflight = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> str:
        """Readiness: keys are loaded.

        Raises:
            RuntimeError: no document has been loaded yet.
        """
        if not self._keys or self._last_success is None:
            raise RuntimeError(f"no signing keys loaded from {self.url}")
        age = self.clock.monotonic() - self._last_success
        return f"{len(self._keys)} keys, fetched {age:.0f}s ago"

    def find(self, kid: str | None) -> VerificationKey | None:
        """The loaded key named ``kid`` (a JWKS key is always found by its id)."""
        return None if kid is None else self._keys.get(kid)

    async def refresh_for(self, kid: str | None) -> VerificationKey | None:
        """Refetch for an unknown ``kid``, unless a fetch happened too recently.

        One fetch at a time: concurrent callers share the fetch in flight
        instead of each starting their own after it. While no key is loaded
        at all (identity down or slow), callers never wait: the fetch runs
        in the background and they get ``None`` at once (the verifier then
        answers 503 with ``Retry-After``).
        """
        if kid is None:
            return None
        key = self._keys.get(kid)
        if key is not None:
            return key
        flight = self._inflight
        if flight is None or flight.done():
            if not self._may_refetch():
                return None
            flight = self._flight()
        if not self._keys:
            return None  # fail fast: nothing to verify with until the fetch lands
        with contextlib.suppress(FetchFailed):
            await asyncio.shield(flight)
        return self._keys.get(kid)

    def _flight(self) -> asyncio.Task[None]:
        """The fetch in flight, or a new one: every caller shares it."""
        flight = self._inflight
        if flight is None or flight.done():
            flight = self._inflight = asyncio.create_task(
                self._fetch_once(), name="lms-auth-jwks-fetch"
            )
            # a failure nobody awaits is still retrieved (and logged by _fetch)
            flight.add_done_callback(lambda t: t.cancelled() or t.exception())
        return flight

    async def _fetch_once(self) -> None:
        try:
            await self._fetch()
        finally:
            # the refetch interval counts from the end of a fetch, so a slow
            # failing one is not followed at once by another
            self._last_attempt = self.clock.monotonic()

    def _may_refetch(self) -> bool:
        last = self._last_attempt
        # with no key at all (identity was down at start-up) a token may try once a second
        interval = self.min_refetch_interval if self._keys else min(1.0, self.min_refetch_interval)
        return last is None or self.clock.monotonic() - last >= interval

    async def refresh(self) -> None:
        """Fetch the document now.

        Joins the fetch in flight when there is one (one fetch at a time).

        Raises:
            FetchFailed: it could not be fetched or held no usable key.
        """
        await asyncio.shield(self._flight())

    async def _run(self) -> None:
        failures = 0
        while True:
            if self._keys:
                delay = self.refresh_interval
            else:
                delay = min(self.refresh_interval, 0.5 * 2 ** min(failures, 10))
            await self.clock.sleep(delay)
            try:
                await self.refresh()
            except FetchFailed:
                failures += 1
            else:
                failures = 0

    async def _fetch(self) -> None:
        if self._client is None:
            raise FetchFailed("the key set is not started")
        self._last_attempt = self.clock.monotonic()
        self.fetches += 1
        try:
            body = await self._download(self._client)
            keys = self._parse(body)
        except (httpx.HTTPError, FetchFailed, ValueError) as exc:
            self.log.warning("JWKS fetch failed", error=str(exc)[:200], kept=len(self._keys))
            raise FetchFailed(str(exc)) from exc
        removed = frozenset(self._keys) - frozenset(keys)
        self._keys = keys
        self._last_success = self.clock.monotonic()
        self.log.debug("JWKS loaded", kids=sorted(keys))
        if removed:
            for listener in self._listeners:
                listener(removed)

    async def _download(self, client: httpx.AsyncClient) -> bytes:
        headers = {"accept": "application/jwk-set+json, application/json"}
        async with client.stream("GET", self.url, headers=headers) as response:
            if response.status_code != 200:
                raise FetchFailed(f"{self.url} answered {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise FetchFailed(f"the JWKS document exceeds {self.max_bytes} bytes")
        return bytes(body)

    def _parse(self, body: bytes) -> dict[str, VerificationKey]:
        try:
            document = strict_json(body)
        except (ValueError, UnicodeDecodeError):
            raise FetchFailed("the JWKS document is not strict JSON") from None
        raw_keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(raw_keys, list):
            raise FetchFailed("the JWKS document has no 'keys' list")
        if len(raw_keys) > self.max_keys:
            raise FetchFailed(f"the JWKS document holds more than {self.max_keys} keys")
        keys: dict[str, VerificationKey] = {}
        for jwk in raw_keys:
            if not isinstance(jwk, dict):
                continue
            try:
                key = key_from_jwk(jwk, algorithms=self.algorithms)
            except ValueError as exc:
                self.log.warning("JWKS key skipped", reason=str(exc)[:200])
                continue
            if key.kid in keys:
                raise FetchFailed(f"the JWKS document has two keys with kid {key.kid!r}")
            keys[str(key.kid)] = key
        if not keys:
            raise FetchFailed("the JWKS document holds no usable signing key")
        return keys
