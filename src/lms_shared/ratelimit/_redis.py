"""The Redis rate-limit storage: one Lua script per check, shared by replicas.

The GCRA step runs as a server-side Lua script (``EVALSHA``, loaded again
transparently after a Redis restart), so the read-compare-write of one
key is atomic: two replicas checking the same client at the same moment
cannot both take the last request. One round trip per check; the key
expires by itself once the client's quota is whole again.

TATs are stored as integer microseconds, formatted with ``%.0f`` (Lua
numbers are doubles, exact up to 2**53 µs, about 285 years).
"""

from __future__ import annotations

from typing import Any

from lms_shared.errors import SettingsError
from lms_shared.ratelimit._errors import StorageUnavailable
from lms_shared.redaction import redact_url

__all__ = ["GCRA_SCRIPT", "RedisStorage"]

GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = math.max(tonumber(stored), now)
end
local new = tat + interval * cost
if new - now > tolerance then
  return {0, string.format('%.0f', tat), string.format('%.0f', now)}
end
if cost > 0 then
  local ttl = math.ceil((new - now) / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', ttl)
end
return {1, string.format('%.0f', new), string.format('%.0f', now)}
"""


class RedisStorage:
    """TATs in Redis, for limits shared by every replica.

    Args:
        url: a ``redis://`` or ``rediss://`` URL (without our options).
        prefix: prepended to every key (keep services and tests apart).
        server_time: use the Redis server's clock instead of ``now_us``.
        timeout: seconds one command (or the wait for a free connection)
            may take before the check fails.
        connect_timeout: seconds opening one connection may take.
        max_connections: connections kept at most; a burst of checks
            queues for them instead of opening a connection each.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "lms:rl:",
        server_time: bool = False,
        timeout: float = 0.5,
        connect_timeout: float = 2.0,
        max_connections: int = 32,
    ) -> None:
        try:
            import redis.asyncio  # noqa: F401, PLC0415 - the driver is optional
        except ImportError as exc:
            raise SettingsError(
                [("LMS_RATELIMIT_URL", "the redis backend needs: pip install 'lms-shared[redis]'")]
            ) from exc
        self.url = url
        self.prefix = prefix
        self.server_time = server_time
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self._client: Any = None
        self._script: Any = None

    def __repr__(self) -> str:
        return f"RedisStorage({redact_url(self.url)!r}, prefix={self.prefix!r})"

    def _connect(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis  # noqa: PLC0415
            from redis.asyncio.retry import Retry  # noqa: PLC0415
            from redis.backoff import NoBackoff  # noqa: PLC0415

            # no retries: a rate-limit check must answer now, or fail over
            # to the limiter's on_error policy, not back off for seconds
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=self.timeout,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.connect_timeout,
                health_check_interval=30,
                retry=Retry(NoBackoff(), 0),
            )
            self._client = aioredis.Redis.from_pool(pool)
            self._script = self._client.register_script(GCRA_SCRIPT)
        return self._client

    async def acquire(
        self, key: str, now_us: int, interval_us: int, tolerance_us: int, cost: int
    ) -> tuple[bool, int, int]:
        """One GCRA step, atomically on the server."""
        import redis  # noqa: PLC0415

        self._connect()
        now_arg = -1 if self.server_time else now_us
        try:
            result = await self._script(
                keys=[self.prefix + key], args=[now_arg, interval_us, tolerance_us, cost]
            )
        except (redis.RedisError, OSError) as exc:
            raise StorageUnavailable(f"rate-limit storage failed: {exc}") from exc
        return bool(result[0]), int(result[1]), int(result[2])

    async def reset(self, key: str) -> None:
        """Delete ``key``."""
        import redis  # noqa: PLC0415

        try:
            await self._connect().delete(self.prefix + key)
        except (redis.RedisError, OSError) as exc:
            raise StorageUnavailable(f"rate-limit storage failed: {exc}") from exc

    async def start(self) -> None:
        """Connect and load the script (a failure here is reported, not fatal)."""
        self._connect()

    async def stop(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            client, self._client, self._script = self._client, None, None
            await client.aclose()

    async def ping(self) -> None:
        """Raise :class:`StorageUnavailable` unless Redis answers ``PING``."""
        import redis  # noqa: PLC0415

        try:
            await self._connect().ping()
        except (redis.RedisError, OSError) as exc:
            raise StorageUnavailable(f"redis does not answer: {exc}") from exc
