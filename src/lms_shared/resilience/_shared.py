"""Breaker state shared across replicas through Redis, opening on a quorum.

Each replica keeps its own breakers and decides from its own calls: a
replica whose breaker trips stops calling at once. What Redis adds is
the *cluster* view: every replica publishes, per breaker, a vote while
its breaker is ``OPEN`` (expiring when its open wait ends) and a
heartbeat. When at least ``quorum`` replicas vote, every replica holds
that breaker open (:meth:`CircuitBreaker.set_cluster_open`) until fewer
than ``quorum`` unexpired votes would remain, even replicas that have
not seen a failure themselves. One replica with a bad network path
therefore never opens the breaker for the whole service; a real outage,
seen by a quorum, stops everyone's calls without each replica paying
its own ``minimum_number_of_calls`` of failures first.

``quorum`` is a number of replicas (``2``) or a share of the live ones
(``0.5``: half of the replicas whose heartbeat has not expired, at least
one). One Lua script per breaker per sync does the prune, the vote and
the count atomically. Votes and heartbeats carry wall-clock expiry
times from the injected clock (monotonic clocks do not compare across
machines), so replica clocks should agree within a fraction of
``wait_duration_in_open_state`` (NTP does).

Syncs run every ``sync_interval`` seconds and at once when an attached
breaker changes state. When Redis fails, :meth:`SharedBreakerState.sync`
raises :class:`SharedStateUnavailable`; the background loop logs it and
releases every cluster hold, so each replica falls back to deciding
alone, never to a cluster-wide open on stale data.

Redis is an optional driver (``pip install 'lms-shared[redis]'``),
imported when the state is made.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from lms_shared.clock import Clock
from lms_shared.errors import ConfigurationError
from lms_shared.resilience._breaker import BreakerState, CircuitBreaker, StateChange
from lms_shared.resilience._errors import SharedStateUnavailable
from lms_shared.resilience._registry import BreakerRegistry
from lms_shared.resilience._timeouts import sleep_until

__all__ = ["QUORUM_SCRIPT", "ClusterView", "SharedBreakerState"]

_log = structlog.get_logger(logger_name="lms.resilience")

QUORUM_SCRIPT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
local vote = tonumber(ARGV[4])
if vote > now then
  redis.call('ZADD', KEYS[1], vote, ARGV[2])
else
  redis.call('ZREM', KEYS[1], ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
local votes = redis.call('ZCARD', KEYS[1])
local replicas = redis.call('ZCARD', KEYS[2])
local required = tonumber(ARGV[5])
local share = tonumber(ARGV[6])
if share > 0 then
  required = math.max(1, math.ceil(share * replicas))
end
local until_ms = '0'
if votes >= required then
  local nth = redis.call('ZREVRANGE', KEYS[1], required - 1, required - 1, 'WITHSCORES')
  until_ms = nth[2]
end
return {votes, replicas, required, until_ms}
"""


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the last sync saw for one breaker.

    Attributes:
        breaker: the breaker's name.
        votes: replicas whose breaker is open.
        replicas: replicas alive (heartbeat not expired).
        required: votes needed to open the cluster.
        open: whether the cluster holds the breaker open.
        open_for: seconds the cluster hold lasts from the sync (0.0 when not open).
    """

    breaker: str
    votes: int
    replicas: int
    required: int
    open: bool
    open_for: float


class SharedBreakerState:
    """Breaker trips of every replica in Redis; a quorum opens the cluster.

    Args:
        url: a ``redis://`` or ``rediss://`` URL.
        clock: the service clock (wall time for expiries, sleeps between syncs).
        replica: this replica's id (a random one by default; the pod name is good).
        quorum: replicas (``int`` >= 1) or share of the live replicas
            (``float`` in (0, 1]) whose votes open the cluster.
        prefix: prepended to every key (keep services and tests apart).
        sync_interval: seconds between syncs (heartbeats last three of them).
        timeout: seconds one Redis command may take.
        connect_timeout: seconds opening a connection may take.

    Raises:
        ConfigurationError: the redis driver is not installed.
        ValueError: a quorum or interval out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock,
        replica: str | None = None,
        quorum: int | float = 2,
        prefix: str = "lms:cb:",
        sync_interval: float = 1.0,
        timeout: float = 0.5,
        connect_timeout: float = 2.0,
    ) -> None:
        try:
            import redis.asyncio  # noqa: F401, PLC0415 - the driver is optional
        except ImportError as exc:
            raise ConfigurationError(
                "the shared breaker state needs Redis: pip install 'lms-shared[redis]'"
            ) from exc
        if isinstance(quorum, bool) or not isinstance(quorum, int | float):
            raise ValueError(f"quorum must be an int or a float, got {quorum!r}")
        if isinstance(quorum, int) and quorum < 1:
            raise ValueError(f"a quorum of replicas must be >= 1, got {quorum}")
        if isinstance(quorum, float) and not 0 < quorum <= 1:
            raise ValueError(f"a quorum share must be in (0, 1], got {quorum}")
        if not (math.isfinite(sync_interval) and sync_interval > 0):
            raise ValueError(f"sync_interval must be positive, got {sync_interval}")
        self.url = url
        self.clock = clock
        self.replica = replica or uuid.uuid4().hex
        self.quorum = quorum
        self.prefix = prefix
        self.sync_interval = sync_interval
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._breakers: dict[str, CircuitBreaker] = {}
        self._views: dict[str, ClusterView] = {}
        self._client: Any = None
        self._script: Any = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return f"SharedBreakerState(replica={self.replica!r}, quorum={self.quorum})"

    def attach(self, breaker: CircuitBreaker) -> None:
        """Share ``breaker``'s trips (a replica's breakers of one name share one vote set)."""
        self._breakers[breaker.name] = breaker
        breaker.on_state_change(self._changed)

    def attach_registry(self, registry: BreakerRegistry) -> None:
        """Share every breaker ``registry`` holds or will make."""
        for breaker in registry:
            self.attach(breaker)
        registry.on_create(self.attach)

    def _changed(self, _: StateChange) -> None:
        self._wake.set()

    def view(self, name: str) -> ClusterView | None:
        """What the last sync saw for breaker ``name``."""
        return self._views.get(name)

    def _connect(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis  # noqa: PLC0415 - optional driver
            from redis.asyncio.retry import Retry  # noqa: PLC0415
            from redis.backoff import NoBackoff  # noqa: PLC0415

            self._client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.connect_timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self._script = self._client.register_script(QUORUM_SCRIPT)
        return self._client

    async def sync(self) -> dict[str, ClusterView]:
        """Publish this replica's votes and apply the cluster's, once, for every breaker.

        Raises:
            SharedStateUnavailable: Redis failed (nothing is applied).
        """
        import redis  # noqa: PLC0415 - optional driver

        self._connect()
        views: dict[str, ClusterView] = {}
        for name, breaker in tuple(self._breakers.items()):
            now_ms = math.floor(self.clock.now().timestamp() * 1000)
            alive_ms = math.ceil(3 * self.sync_interval * 1000)
            remaining = breaker.open_remaining if breaker.state is BreakerState.OPEN else 0.0
            vote_ms = now_ms + math.ceil(remaining * 1000) if remaining > 0 else 0
            wait_ms = math.ceil(breaker.config.wait_duration_in_open_state * 1000)
            share = self.quorum if isinstance(self.quorum, float) else 0.0
            count = self.quorum if isinstance(self.quorum, int) else 0
            try:
                votes, replicas, required, until = await self._script(
                    keys=[f"{self.prefix}{name}:votes", f"{self.prefix}{name}:replicas"],
                    args=[
                        now_ms,
                        self.replica,
                        now_ms + alive_ms,
                        vote_ms,
                        count,
                        share,
                        max(wait_ms, alive_ms) + 1000,
                    ],
                )
            except (redis.RedisError, OSError) as exc:
                raise SharedStateUnavailable(f"shared breaker state failed: {exc}") from exc
            open_for = max(0.0, (float(until) - now_ms) / 1000)
            views[name] = ClusterView(
                name, int(votes), int(replicas), int(required), open_for > 0, open_for
            )
        for name, view in views.items():
            self._breakers[name].set_cluster_open(view.open_for if view.open else None)
        self._views.update(views)
        return views

    def _release_all(self) -> None:
        for breaker in tuple(self._breakers.values()):
            breaker.set_cluster_open(None)
        self._views.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.sync()
            except SharedStateUnavailable as exc:
                _log.warning("circuit_breaker.shared_state_unavailable", error=str(exc))
                self._release_all()
            self._wake.clear()
            due = self.clock.monotonic() + self.sync_interval
            sleeper = loop.create_task(sleep_until(self.clock, due))
            waker = loop.create_task(self._wake.wait())
            try:
                await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()

    async def start(self) -> None:
        """Start the background sync loop (in the service lifespan)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop, withdraw nothing (votes expire on their own), close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._client is not None:
            client, self._client, self._script = self._client, None, None
            await client.aclose()
