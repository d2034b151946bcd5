"""The Redis Streams transport (redis-py asyncio): one stream, a consumer group per group.

Keys, per namespace ``ns`` (the ``{ns}`` hash tag keeps them in one slot):

* ``lms:{ns}:stream``: every event, in publish order (``XADD``, trimmed
  to about ``max_length`` entries with ``MAXLEN ~``). Each group is a
  consumer group on it, created at the stream's end (``$``) by the first
  subscription; members read with ``XREADGROUP`` (competing consumers), every
  group reads every entry (fan-out) and a member acks (``XACK``) the types
  it does not take. An entry stays: the stream is the history that
  :meth:`RedisStreamsTransport.rewind` reads (``XRANGE``), so
  :attr:`keeps_history` is true within the retention.
* ``lms:{ns}:redo:<group>``: the group's second stream. Retries, reclaimed
  deliveries and rewinds put copies here (with ``attempt`` and ``pos``, the
  entry's id in the first stream); an acked copy is deleted. A member reads
  it first (without blocking), then both streams (blocking up to ``block``),
  never more entries than it has free handler slots.
* ``lms:{ns}:delay:<group>``: a sorted set of retries by due time (the
  server's clock). :meth:`Delivery.retry` acks the entry and adds its copy in
  one script; a small scheduler per subscription moves due copies into the
  redo stream (woken by its own process's retries, else polling at most
  every ``poll`` seconds).
* ``lms:{ns}:dead``: entries that are not CloudEvents (missing or mistyped
  fields, too large), with the reason, the group and the entry id; they are
  acked instead of reaching a handler.

Fields are the binary mode of the event: ``ce_<attribute>`` (canonical
strings, as the Kafka binding names headers) and ``data`` (the bytes).

What Redis does natively, and what this module emulates:

* **Native**: confirmed publish (a publish returns once Redis answered every
  ``XADD``), competing consumers and fan-out (consumer groups), at-least-once
  bookkeeping (each group's pending entries list, ``XACK``), publish order
  (one stream), history (the stream keeps acked entries) and positions
  (entry ids ``<ms>-<seq>``, the ``ms`` by the server's clock).
* **Emulated: redelivery after ack_wait.** Redis never redelivers by itself.
  Every member of the group runs ``XAUTOCLAIM`` every quarter of
  ``ack_wait`` (at most 5 s apart); one script copies each entry idle that long, attempt + 1,
  into the redo stream and acks the original, so attempts are counted
  exactly and a late ack of the original is a no-op.
* **Emulated: delayed redelivery** (:attr:`native_delay` is false): the
  delay set and the scheduler above.
* **Emulated: replay from a time or a position.** A group has one read
  cursor, so :meth:`rewind` does not move it: it copies the matching
  entries (``XRANGE`` from the position, or from the first id at or after
  ``since``, up to the last entry at the time of the call) into the group's
  redo stream with attempt 1.
* **Emulated: dead letters**, for entries that cannot be a
  :class:`Message` only (the ``dead`` stream). Events whose handlers keep
  failing are the bus's to dead-letter, not the transport's.
* **Not provided: per-key order.** Nothing keeps the events of one
  ``partitionkey`` together (see below).

What does not hold:

* **Per-key order**: only one subscription with ``concurrency=1`` sees its
  group's first deliveries in publish order. With more concurrency, or more
  members, two events of one ``partitionkey`` may be handled at the same
  time or out of order. Redeliveries, due retries and rewound copies are
  read before newer entries of the main stream, but after the entries
  already taken from it.
* **One set of types per group**: a member acks (drops) an event of a type
  it does not take, so give every member of a group the same types.
* **Redelivery needs a running member**: with no subscription of the group
  running, nothing is reclaimed and no retry becomes due (they wait, they
  are not lost). A handler still running after ``ack_wait`` is not stopped:
  its event may be handled twice at once (deduplicate by event id).
* **Retention loses unsettled events**: ``MAXLEN ~`` trims the oldest
  entries whether or not every group acked them; a group that is that far
  behind never sees them, and reclaiming logs the pending ones it finds
  trimmed as lost. ``max_length=None`` never trims (the stream then grows
  without bound).
* **Durability is the server's**: an answered ``XADD`` is in memory and in
  the AOF as ``appendfsync`` says (``everysec`` may lose the last second on
  a crash); replication is asynchronous, so a failover may lose confirmed
  events. A server that restarts empty loses the groups too: members
  recreate theirs at the (new) stream's end.
* **A rewind delivers at least once**: events the group has not settled
  yet are delivered again; rewound copies count from attempt 1.
* **One shard**: every key of a namespace is in one hash slot, so a Redis
  Cluster holds a namespace on one node.

**Acks are coalesced**: an ack is queued and returns; the acks of one loop
tick go out together as one ``XACK`` per stream (with the ``XDEL`` of redo
copies, in one ``MULTI``), one round trip at a time, at most
``max(concurrency, 64)`` waiting (past that an ack waits for the round trip).
An ack lost with the connection leaves the entry pending: it is reclaimed
and delivered again (at least once).

``stop`` cancels a subscription's workers at once, a blocking
``XREADGROUP`` included (redis-py drops that connection, Redis unblocks it);
entries read but not yet handled stay pending and are reclaimed after
``ack_wait``; the queued acks are sent before the member leaves. Every
wait is bounded: a task that ignores its cancellation is logged and left
behind after ``timeout``, never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar

from lms_shared.events._attributes import CORE_ATTRIBUTES, KNOWN_EXTENSIONS
from lms_shared.events._broker import (
    HandlerTasks,
    check_namespace,
    describe,
    optional_int,
    split_options,
)
from lms_shared.events._envelope import DEFAULT_LIMITS, EnvelopeLimits
from lms_shared.events._errors import InvalidEvent, PublishFailed, TransportUnavailable
from lms_shared.events._transport import Delivery, Handler, Message, SubscriptionSpec
from lms_shared.observability import get_logger
from lms_shared.redaction import redact_url

__all__ = ["RedisStreamsTransport", "decode_entry", "encode_entry"]

MAX_CONNECTIONS = 64
"""Connections of one transport to Redis (commands beyond them wait their turn)."""

_URL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "namespace": str,
    "max_length": optional_int,
    "timeout": float,
    "block": float,
    "poll": float,
}
_ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_ATTRIBUTE = b"ce_"
_ATTRIBUTE_LENGTH = len(_ATTRIBUTE)
_FIELDS = {name: _ATTRIBUTE + name.encode() for name in (*CORE_ATTRIBUTES, *KNOWN_EXTENSIONS)}
"""The field names of the attributes most events carry, encoded once."""
_NAMES = {field: name for name, field in _FIELDS.items()}
_SPARE_FIELDS = 4  # data, attempt, pos, retry

# Retry: ack the entry (and delete a copy), then add it to the delay set by
# the server's clock. Nothing happens when it was acked already (reclaimed).
_RETRY = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[5] == '1' then redis.call('XDEL', KEYS[1], ARGV[2]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
return 1
"""

# Move the due retries into the redo stream; answer how many moved and in
# how many milliseconds the next one is due (-1: none). A member is its
# entry's fields, each as ``<length>:<bytes>`` (see _pack).
_MOVE_DUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local parts, i = {}, 1
  while i <= #member do
    local colon = string.find(member, ':', i, true)
    local size = tonumber(string.sub(member, i, colon - 1))
    parts[#parts + 1] = string.sub(member, colon + 1, colon + size)
    i = colon + size + 1
  end
  redis.call('XADD', KEYS[2], '*', unpack(parts))
  redis.call('ZREM', KEYS[1], member)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if first[2] then wait = math.max(0, tonumber(first[2]) - now) end
return {#due, wait}
"""

# Reclaim entries idle longer than ack_wait: copy each with the next attempt
# into the redo stream and ack the original (delete it, if it was a copy).
# Answers how many moved, the next cursor and how many pending entries had
# been trimmed away (Redis 7 drops those from the group and names them).
_RECLAIM = """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local moved = 0
for _, entry in ipairs(r[2]) do
  local id, f = entry[1], entry[2]
  if f then
    local attempt, pos, out = 1, id, {}
    for i = 1, #f, 2 do
      local k = f[i]
      if k == 'attempt' then attempt = tonumber(f[i + 1]) or 1
      elseif k == 'pos' then pos = f[i + 1]
      elseif k ~= 'retry' then out[#out + 1] = k; out[#out + 1] = f[i + 1] end
    end
    out[#out + 1] = 'attempt'; out[#out + 1] = tostring(attempt + 1)
    out[#out + 1] = 'pos'; out[#out + 1] = pos
    redis.call('XADD', KEYS[2], '*', unpack(out))
    redis.call('XACK', KEYS[1], ARGV[1], id)
    if ARGV[6] == '1' then redis.call('XDEL', KEYS[1], id) end
    moved = moved + 1
  end
end
local gone = 0
if r[3] then gone = #r[3] end
return {moved, r[1], gone}
"""


_T = TypeVar("_T")


async def _within(awaitable: Awaitable[_T], seconds: float) -> _T:
    """``await awaitable``, raising :class:`TimeoutError` after ``seconds``.

    Not :func:`asyncio.wait_for`: on Python 3.11 it swallows a cancellation
    that arrives just as the awaited call completes, and a worker whose
    cancellation is lost runs on after ``stop``. :func:`asyncio.timeout`
    awaits in the caller's own task and never loses one.
    """
    async with asyncio.timeout(seconds):
        return await awaitable


async def _nap(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` have passed, whichever comes first."""
    if event.is_set():
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def _settle(tasks: Collection[asyncio.Task[Any]], seconds: float) -> set[asyncio.Task[Any]]:
    """Wait up to ``seconds`` for ``tasks`` to end; the ones still running.

    Unlike :func:`asyncio.gather`, this returns even when a task ignores
    its cancellation.
    """
    if not tasks:
        return set()
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    return pending


def _driver() -> Any:
    try:
        import redis.asyncio  # noqa: PLC0415 - the driver is optional (the redis extra)
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise TransportUnavailable(
            "the redis transport needs: pip install 'lms-shared[redis]'"
        ) from exc
    return redis


def _failures() -> tuple[type[BaseException], ...]:
    import redis  # noqa: PLC0415

    return (redis.RedisError, OSError, TimeoutError)


def encode_entry(
    message: Message, limits: EnvelopeLimits, *, attempt: int | None = None, pos: str | None = None
) -> dict[bytes, bytes]:
    """The stream entry's fields for ``message`` (``ce_<name>``, ``data``, ours).

    Raises:
        InvalidEvent: the message is larger than ``limits``.
    """
    attributes = message.attributes
    if len(attributes) > limits.max_attributes:
        raise InvalidEvent(f"an event carries at most {limits.max_attributes} attributes")
    fields: dict[bytes, bytes] = {}
    size = len(message.data)  # as check_size counts: names (ASCII a-z0-9), values in UTF-8
    for name, value in attributes.items():
        key = _FIELDS.get(name) or _ATTRIBUTE + name.encode()
        fields[key] = encoded = value.encode()
        size += len(name) + len(encoded)
    if size > limits.max_bytes:
        raise InvalidEvent(f"the event is larger than {limits.max_bytes} bytes")
    fields[b"data"] = message.data
    if attempt is not None:
        fields[b"attempt"] = str(attempt).encode()
    if pos is not None:
        fields[b"pos"] = pos.encode()
    return fields


def decode_entry(
    entry_id: str, fields: dict[bytes, bytes], limits: EnvelopeLimits
) -> tuple[Message, int, str]:
    """The message, its attempt and its position (first-stream id) from an entry.

    Raises:
        InvalidEvent: the entry is not a CloudEvent in binary mode within ``limits``.
    """
    if len(fields) > limits.max_attributes + _SPARE_FIELDS:
        raise InvalidEvent(f"an event carries at most {limits.max_attributes} attributes")
    if sum(map(len, fields)) + sum(map(len, fields.values())) > limits.max_bytes + 256:
        raise InvalidEvent(f"the event is larger than {limits.max_bytes} bytes")
    attributes: dict[str, str] = {}
    data = b""
    attempt, position = 1, entry_id
    size = 0  # the message's, as check_size counts it (UTF-8 bytes)
    try:
        for key, value in fields.items():
            name = _NAMES.get(key)
            if name is not None:
                attributes[name] = value.decode()
                size += len(key) - _ATTRIBUTE_LENGTH + len(value)
            elif key.startswith(_ATTRIBUTE):
                attributes[key[_ATTRIBUTE_LENGTH:].decode()] = value.decode()
                size += len(key) - _ATTRIBUTE_LENGTH + len(value)
            elif key == b"data":
                data = bytes(value)
            elif key == b"attempt":
                attempt = int(value)
            elif key == b"pos":
                position = value.decode()
    except (UnicodeDecodeError, ValueError):
        raise InvalidEvent("an attribute, attempt or position is not valid text") from None
    if attempt < 1 or not _ENTRY_ID.fullmatch(position):
        raise InvalidEvent("the entry's attempt or position is malformed")
    message = Message(attributes, data)
    if len(attributes) > limits.max_attributes:
        raise InvalidEvent(f"an event carries at most {limits.max_attributes} attributes")
    if size + len(data) > limits.max_bytes:
        raise InvalidEvent(f"the event is larger than {limits.max_bytes} bytes")
    return message, attempt, position


def _pack(fields: dict[bytes, bytes]) -> bytes:
    """Fields as one delay-set member: ``<length>:<bytes>`` per name and value."""
    return b"".join(b"%d:%s" % (len(part), part) for pair in fields.items() for part in pair)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamsTransport:
    """A :class:`~lms_shared.events.Transport` on Redis Streams (redis-py asyncio).

    Args:
        url: a ``redis://``, ``rediss://`` or ``unix://`` URL.
        namespace: in every key (lower-case ``a-z0-9_-``).
        max_length: the stream is trimmed to about this many entries
            (``MAXLEN ~``); ``None`` never trims. It bounds the history, and
            a group that falls this far behind loses what was trimmed.
        limits: bounds of what is published and accepted (larger: :class:`InvalidEvent`).
        timeout: seconds one command may take (connect included).
        block: seconds one ``XREADGROUP`` waits for entries before it asks again.
        poll: most seconds between two looks at the delay set.
    """

    name = "redis"
    native_delay = False
    keeps_history = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "lms",
        max_length: int | None = 1_000_000,
        limits: EnvelopeLimits = DEFAULT_LIMITS,
        timeout: float = 5.0,
        block: float = 1.0,
        poll: float = 1.0,
    ) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{redact_url(url)!r} is not a redis://, rediss:// or unix:// URL")
        if max_length is not None and max_length < 1:
            raise ValueError("max_length must be at least 1 (or None)")
        if timeout <= 0 or block <= 0 or poll <= 0:
            raise ValueError("timeout, block and poll must be positive")
        self.url = url
        self.namespace = check_namespace(namespace)
        self.max_length = max_length
        self.limits = limits
        self.timeout = timeout
        self.block = block
        self.poll = poll
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._subscriptions: set[_RedisSubscription] = set()
        self._stop_lock = asyncio.Lock()
        self._log = get_logger("lms.events.redis", namespace=namespace)

    @classmethod
    def from_url(cls, url: str, options: object = None, /, **kwargs: Any) -> RedisStreamsTransport:
        """The transport for ``redis[s]://[user:password@]host:port/db[?options]``.

        URL options (the rest go to redis-py): ``namespace``, ``max_length``
        (a count or ``none``), ``timeout``, ``block``, ``poll``. ``kwargs``
        (the constructor's) win over them; ``options`` is the factory's
        :class:`~lms_shared.events.TransportOptions` (its namespace).

        Raises:
            ValueError: another scheme or a malformed option.
        """
        clean, arguments = split_options(url, _URL_OPTIONS, options, kwargs)
        return cls(clean, **arguments)

    def __repr__(self) -> str:
        return f"RedisStreamsTransport({redact_url(self.url)!r}, namespace={self.namespace!r})"

    # keys ----------------------------------------------------------------------

    @property
    def stream(self) -> str:
        """The stream every event is added to."""
        return f"lms:{{{self.namespace}}}:stream"

    def redo_stream(self, group: str) -> str:
        """The stream of ``group``'s retries, reclaimed deliveries and rewinds."""
        return f"lms:{{{self.namespace}}}:redo:{group}"

    def delay_set(self, group: str) -> str:
        """The sorted set of ``group``'s retries waiting for their time."""
        return f"lms:{{{self.namespace}}}:delay:{group}"

    @property
    def dead_letter_stream(self) -> str:
        """The stream of entries that were not CloudEvents."""
        return f"lms:{{{self.namespace}}}:dead"

    # lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect and check Redis answers (idempotent).

        Raises:
            TransportUnavailable: Redis cannot be reached.
        """
        if self._client is not None:
            return
        redis = _driver()
        from redis.asyncio.retry import Retry  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415

        # a blocking pool: past its size a command waits (up to the timeout) for a
        # free connection instead of failing, so hundreds of handlers acking at
        # once queue up rather than lose their acks (redis-py's default pool
        # refuses the 101st connection)
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            self.url,
            max_connections=MAX_CONNECTIONS,
            timeout=self.timeout,
            decode_responses=False,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout + self.block,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 0),
        )
        client = redis.asyncio.Redis.from_pool(pool)
        try:
            await _within(client.ping(), self.timeout)
        except _failures() as exc:
            await client.aclose()
            raise TransportUnavailable(
                f"redis at {redact_url(self.url)} is unreachable: {describe(exc)}"
            ) from exc
        self._client = client
        self._scripts = {
            "retry": client.register_script(_RETRY),
            "move": client.register_script(_MOVE_DUE),
            "reclaim": client.register_script(_RECLAIM),
        }

    async def stop(self) -> None:
        """Stop every subscription without draining and close the connections.

        Idempotent (a second call, even a concurrent one, waits for the first
        and then does nothing) and bounded: the subscriptions stop at once,
        each within a few ``timeout`` even if a handler ignores its
        cancellation, and closing the connections takes at most ``timeout``.
        """
        async with self._stop_lock:
            subscriptions = list(self._subscriptions)
            if subscriptions:
                await asyncio.gather(
                    *(s.stop(drain=False) for s in subscriptions), return_exceptions=True
                )
            client, self._client = self._client, None
            if client is not None:
                with contextlib.suppress(*_failures()):
                    await _within(client.aclose(), self.timeout)

    async def ping(self) -> None:
        """Raises :class:`TransportUnavailable` unless Redis answers ``PING`` in ``timeout``."""
        if self._client is None:
            raise TransportUnavailable("redis transport is not started")
        try:
            await _within(self._client.ping(), self.timeout)
        except _failures() as exc:
            raise TransportUnavailable(f"redis does not answer: {describe(exc)}") from exc

    async def destroy(self) -> None:
        """Delete every key of the namespace (test teardown; the events are lost)."""
        redis = _driver()
        client = redis.asyncio.Redis.from_url(
            self.url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout
        )
        try:
            keys = [key async for key in client.scan_iter(f"lms:{{{self.namespace}}}:*")]
            if keys:
                await _within(client.delete(*keys), self.timeout)
        except _failures():
            pass
        finally:
            with contextlib.suppress(*_failures()):
                await _within(client.aclose(), self.timeout)

    def _require(self, error: type[Exception]) -> Any:
        if self._client is None:
            raise error("redis transport is not started")
        return self._client

    # publishing ----------------------------------------------------------------

    async def publish(self, messages: Sequence[Message]) -> None:
        """``XADD`` every message in one pipeline; return once Redis answered each.

        Raises:
            InvalidEvent: a message is larger than ``limits``; nothing is sent.
            PublishFailed: not started, or Redis failed or did not answer.
        """
        client = self._require(PublishFailed)
        entries = [encode_entry(m, self.limits) for m in messages]
        if not entries:
            return
        pipe = client.pipeline(transaction=False)
        for fields in entries:
            pipe.xadd(self.stream, fields, maxlen=self.max_length, approximate=True)
        try:
            await _within(pipe.execute(), self.timeout)
        except _failures() as exc:
            raise PublishFailed(f"redis did not store the events: {describe(exc)}") from exc

    # subscribing ---------------------------------------------------------------

    async def ensure_group(self, group: str) -> None:
        """Create ``group`` on the stream (at its end) and on its redo stream (at 0)."""
        import redis  # noqa: PLC0415

        client = self._require(TransportUnavailable)
        for key, start in ((self.stream, "$"), (self.redo_stream(group), "0")):
            try:
                await _within(
                    client.xgroup_create(key, group, id=start, mkstream=True), self.timeout
                )
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def subscribe(self, spec: SubscriptionSpec, handler: Handler) -> _RedisSubscription:
        """Join ``spec.group`` (created at the stream's end if new) and start reading.

        Raises:
            TransportUnavailable: not started or Redis failed.
        """
        self._require(TransportUnavailable)
        try:
            await self.ensure_group(spec.group)
        except _failures() as exc:
            raise TransportUnavailable(f"redis refused the subscription: {describe(exc)}") from exc
        subscription = _RedisSubscription(self, spec, handler)
        self._subscriptions.add(subscription)
        subscription.start()
        return subscription

    # replay --------------------------------------------------------------------

    async def rewind(
        self,
        group: str,
        types: Sequence[str],
        *,
        since: datetime | None = None,
        position: str | None = None,
    ) -> None:
        """Copy the stream's retained entries of ``types`` from a point on to ``group``.

        The point is an entry id (``position``, as :attr:`Delivery.position`
        gives it) or the first entry Redis stored at or after ``since``. The
        copies go to the group's redo stream only, up to the last entry at
        the time of the call.

        Raises:
            ValueError: both ``since`` and ``position``, or a malformed ``position``.
            TransportUnavailable: not started or Redis failed.
        """
        if since is not None and position is not None:
            raise ValueError("give since or position, not both")
        if position is not None and not (
            isinstance(position, str) and _ENTRY_ID.fullmatch(position)
        ):
            raise ValueError(f"{position!r} is not a redis stream position (<ms>-<seq>)")
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be an aware datetime")
        start = position or ("-" if since is None else f"{int(since.timestamp() * 1000)}-0")
        wanted = {t.encode() for t in types}
        client = self._require(TransportUnavailable)
        try:
            await self.ensure_group(group)
            last = await _within(client.xrevrange(self.stream, count=1), self.timeout)
            if not last:
                return
            end = _text(last[0][0])
            while True:
                entries = await _within(
                    client.xrange(self.stream, min=start, max=end, count=500), self.timeout
                )
                pipe = client.pipeline(transaction=False)
                for entry_id, fields in entries:
                    if fields.get(b"ce_type") in wanted:
                        copy = dict(fields)
                        copy[b"attempt"], copy[b"pos"] = b"1", entry_id
                        pipe.xadd(self.redo_stream(group), copy)
                await _within(pipe.execute(), self.timeout)
                if len(entries) < 500:
                    return
                start = "(" + _text(entries[-1][0])
        except _failures() as exc:
            raise TransportUnavailable(f"redis failed the rewind: {describe(exc)}") from exc


class _RedisSubscription:
    """One consumer of a group; see :class:`~lms_shared.events.Subscription`.

    Three workers: the reader (``XREADGROUP``, never more than the free
    handler slots), the reclaimer (``XAUTOCLAIM`` every quarter of
    ``ack_wait``) and the retry scheduler. Each loops only while the
    subscription runs and sleeps on an event that ``stop`` sets, so none
    depends on its cancellation alone to end.

    Acks are coalesced: :meth:`_RedisDelivery.ack` queues the entry and
    returns; one sender sends everything queued as one ``XACK`` per stream
    (with the ``XDEL`` of redo copies, in one ``MULTI``), one round trip at
    a time, so the acks of one loop tick travel together. At most
    ``max(concurrency, 64)`` acks wait: past that an ack waits for the
    sender. ``stop`` sends what is queued before it leaves the group.
    """

    def __init__(
        self, transport: RedisStreamsTransport, spec: SubscriptionSpec, handler: Handler
    ) -> None:
        self.transport = transport
        self.spec = spec
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.redo = transport.redo_stream(spec.group)
        self.delay = transport.delay_set(spec.group)
        self.streams = {transport.stream: ">", self.redo: ">"}
        self.tasks = HandlerTasks(handler, self._failed, self._freed)
        self.buffer: deque[tuple[str, str, dict[bytes, bytes]]] = deque()
        self.capacity = asyncio.Event()
        self.wake = asyncio.Event()
        self.halted = asyncio.Event()
        self.workers: list[asyncio.Task[None]] = []
        self.chores: set[asyncio.Task[None]] = set()  # acks of other types, dead letters
        self.acks: list[tuple[str, str]] = []  # (stream, entry id) acked, not sent yet
        self.ack_limit = max(spec.concurrency, 64)
        self._sender: asyncio.Task[None] | None = None
        self.stopped = False
        self._stopping: asyncio.Task[None] | None = None
        self._log = transport._log.bind(group=spec.group)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.workers = [
            loop.create_task(self._read()),
            loop.create_task(self._reclaim()),
            loop.create_task(self._schedule()),
        ]

    def _failed(self, delivery: Delivery, exc: Exception) -> None:
        self._log.warning(
            "event handler failed",
            event_id=delivery.message.id,
            event_type=delivery.message.type,
            attempt=delivery.attempt,
            error=type(exc).__name__,
        )

    def _freed(self) -> None:
        self.capacity.set()

    def _chore(self, work: Awaitable[None]) -> None:
        """Run ``work`` in a task that ``stop`` waits for (bounded)."""

        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self.chores.add(task)
        task.add_done_callback(self.chores.discard)

    @property
    def free(self) -> int:
        return self.spec.concurrency - len(self.tasks)

    # acks ----------------------------------------------------------------------

    async def ack(self, stream: str, entry_id: str) -> None:
        """Queue the ack of an entry; wait for the sender only when too many are queued."""
        self.acks.append((stream, entry_id))
        sender = self._sender
        if sender is None:
            sender = self._sender = asyncio.get_running_loop().create_task(self._send_acks())
        if len(self.acks) > self.ack_limit:
            await asyncio.shield(sender)

    async def _send_acks(self) -> None:
        """Send the queued acks, one round trip at a time, until none is left."""
        try:
            while self.acks:
                batch, self.acks = self.acks, []
                await self._send(batch)
        finally:
            self._sender = None

    async def _send(self, batch: list[tuple[str, str]]) -> None:
        client = self.transport._client
        if client is None:  # stopped: the entries stay pending, reclaimed later
            return
        group = self.spec.group
        main = [entry_id for stream, entry_id in batch if stream != self.redo]
        copies = [entry_id for stream, entry_id in batch if stream == self.redo]
        try:
            if not copies:
                await _within(
                    client.xack(self.transport.stream, group, *main), self.transport.timeout
                )
            else:
                pipe = client.pipeline(transaction=True)
                if main:
                    pipe.xack(self.transport.stream, group, *main)
                pipe.xack(self.redo, group, *copies)
                pipe.xdel(self.redo, *copies)
                await _within(pipe.execute(), self.transport.timeout)
        except _failures() as exc:
            self._log.warning(
                "ack failed: the events will be delivered again",
                count=len(batch),
                error=describe(exc),
            )

    async def _flush_acks(self) -> None:
        """Send every queued ack now (``stop``), bounded by the transport's timeout."""
        if self._sender is None and self.acks:
            self._sender = asyncio.get_running_loop().create_task(self._send_acks())
        if self._sender is not None:
            left = await _settle([self._sender], self.transport.timeout * 2)
            if left:
                self._log.warning("acks not sent at stop: delivered again", count=len(self.acks))

    async def _backoff(self, failures: int, exc: BaseException) -> None:
        self._log.warning("redis read failed; retrying", error=describe(exc), failures=failures)
        await _nap(self.halted, min(0.05 * 2**failures, 2.0))

    async def _read(self) -> None:
        """Read at most the free handler slots: redeliveries first, then new entries."""
        import redis  # noqa: PLC0415

        failures = 0
        block = max(1, int(self.transport.block * 1000))
        while not self.stopped:
            self._dispatch()
            want = self.free - len(self.buffer)
            if want <= 0:
                self.capacity.clear()
                await self.capacity.wait()
                continue
            client = self.transport._client
            if client is None:
                return
            try:
                # the redo stream alone first, without blocking: one read of
                # both streams takes up to ``want`` from *each*, more than the
                # free slots (and the surplus would sit pending, unhandled)
                reply = await client.xreadgroup(
                    self.spec.group, self.consumer, {self.redo: ">"}, count=want
                )
                if not reply:
                    reply = await client.xreadgroup(
                        self.spec.group, self.consumer, self.streams, count=want, block=block
                    )
                failures = 0
            except redis.ResponseError as exc:
                failures += 1
                if "NOGROUP" in str(exc):  # Redis lost the group (restarted empty)
                    with contextlib.suppress(*_failures()):
                        await self.transport.ensure_group(self.spec.group)
                await self._backoff(failures, exc)
                continue
            except _failures() as exc:
                failures += 1
                await self._backoff(failures, exc)
                continue
            for stream, entries in reply or ():
                for entry_id, fields in entries:
                    self.buffer.append((_text(stream), _text(entry_id), fields))

    def _dispatch(self) -> None:
        while self.buffer and self.free > 0:
            stream, entry_id, fields = self.buffer.popleft()
            try:
                message, attempt, position = decode_entry(entry_id, fields, self.transport.limits)
            except InvalidEvent as exc:
                self._chore(self._dead_letter(stream, entry_id, fields, exc.reason))
                continue
            delivery = _RedisDelivery(self, stream, entry_id, message, attempt, position)
            if message.type not in self.spec.types:
                self._chore(delivery.ack())
                continue
            self.tasks.spawn(delivery)

    async def _dead_letter(
        self, stream: str, entry_id: str, fields: dict[bytes, bytes], reason: str
    ) -> None:
        self._log.warning(
            "entry is not a CloudEvent: dead-lettered",
            stream=stream,
            entry=entry_id,
            reason=reason,
        )
        client = self.transport._client
        if client is None:
            return
        letter: dict[bytes, bytes] = {
            b"reason": reason.encode(),
            b"group": self.spec.group.encode(),
            b"stream": stream.encode(),
            b"entry": entry_id.encode(),
        }
        if len(fields) <= 256 and sum(len(k) + len(v) for k, v in fields.items()) <= (
            self.transport.limits.max_bytes
        ):
            letter.update({b"field:" + k: v for k, v in fields.items()})
        pipe = client.pipeline(transaction=True)
        pipe.xadd(self.transport.dead_letter_stream, letter, maxlen=10_000, approximate=True)
        pipe.xack(stream, self.spec.group, entry_id)
        if stream == self.redo:
            pipe.xdel(stream, entry_id)
        with contextlib.suppress(*_failures()):
            await _within(pipe.execute(), self.transport.timeout)

    async def _reclaim(self) -> None:
        """Every quarter of ``ack_wait``, move entries idle longer than it to the redo stream."""
        interval = min(max(self.spec.ack_wait / 4, 0.05), 5.0)
        idle_ms = max(1, int(self.spec.ack_wait * 1000))
        cursors = {self.transport.stream: "0-0", self.redo: "0-0"}
        script = self.transport._scripts["reclaim"]
        while not self.stopped:
            await _nap(self.halted, interval)
            for stream, start in list(cursors.items()):
                if self.stopped:
                    return
                try:
                    moved, cursor, *gone = await _within(
                        script(
                            keys=[stream, self.redo],
                            args=[
                                self.spec.group,
                                self.consumer,
                                idle_ms,
                                start,
                                100,
                                "1" if stream == self.redo else "0",
                            ],
                        ),
                        self.transport.timeout,
                    )
                except _failures() as exc:
                    self._log.warning("reclaim failed", error=describe(exc))
                    continue
                cursors[stream] = _text(cursor)
                if moved:
                    self._log.info("reclaimed unsettled deliveries", stream=stream, count=moved)
                if gone and gone[0]:
                    self._log.warning(
                        "unsettled deliveries were trimmed from the stream: lost",
                        stream=stream,
                        count=gone[0],
                    )

    async def _schedule(self) -> None:
        """Move due retries into the redo stream; sleep until the next is due (or ``poll``)."""
        script = self.transport._scripts["move"]
        while not self.stopped:
            self.wake.clear()  # before the look: a retry added during it wakes the nap
            wait = self.transport.poll
            try:
                moved, due_in = await _within(
                    script(keys=[self.delay, self.redo], args=[100]), self.transport.timeout
                )
                if moved >= 100:
                    continue
                if due_in >= 0:
                    wait = min(wait, due_in / 1000)
            except _failures() as exc:
                self._log.warning("retry scheduler failed", error=describe(exc))
            if not self.stopped:
                await _nap(self.wake, wait)

    async def stop(self, *, drain: bool = True, timeout: float = 30.0) -> None:
        """Stop reading; with ``drain`` wait up to ``timeout`` for the handlers.

        The workers are cancelled at once (a blocking ``XREADGROUP`` too:
        redis-py drops that connection, so Redis unblocks it). Handlers
        still running after ``timeout`` (at once without ``drain``) are
        cancelled; their deliveries stay pending in the group and another
        member reclaims them after ``ack_wait``. Bounded: a task that ignores
        its cancellation is left behind after the transport's ``timeout``
        (logged), never waited for. A second call waits for the first.
        """
        if self._stopping is None:
            self.stopped = True
            self.halted.set()
            self.capacity.set()
            self.wake.set()
            for worker in self.workers:
                worker.cancel()
            self._stopping = asyncio.get_running_loop().create_task(
                self._shutdown(drain=drain, timeout=timeout)
            )
        # shielded: a caller cancelled while waiting leaves the shutdown to finish
        await asyncio.shield(self._stopping)

    async def _shutdown(self, *, drain: bool, timeout: float) -> None:
        grace = self.transport.timeout
        try:
            stuck = await _settle(self.workers, grace)
            self.buffer.clear()  # read but never handled: pending, reclaimed later
            running = set(self.tasks.tasks)
            if drain and running:
                await asyncio.wait(running, timeout=timeout)
            for task in running:
                task.cancel()
            stuck |= await _settle(running, grace)
            chores = set(self.chores)
            left = await _settle(chores, grace)
            for task in left:
                task.cancel()
            stuck |= await _settle(left, grace)
            await self._flush_acks()
            if stuck:
                self._log.warning("tasks ignored their cancellation at stop", count=len(stuck))
            await self._leave()
        finally:
            self.transport._subscriptions.discard(self)

    async def _leave(self) -> None:
        """Remove this consumer from the group when it holds no pending entry."""
        client = self.transport._client
        if client is None:
            return
        with contextlib.suppress(*_failures()):
            async with asyncio.timeout(self.transport.timeout):
                for stream in self.streams:
                    pending = await client.xpending_range(
                        stream, self.spec.group, "-", "+", 1, consumername=self.consumer
                    )
                    if not pending:
                        await client.xgroup_delconsumer(stream, self.spec.group, self.consumer)


class _RedisDelivery:
    """One entry read by a consumer; see :class:`~lms_shared.events.Delivery`."""

    def __init__(
        self,
        subscription: _RedisSubscription,
        stream: str,
        entry_id: str,
        message: Message,
        attempt: int,
        position: str,
    ) -> None:
        self._subscription = subscription
        self._stream = stream
        self._entry_id = entry_id
        self._message = message
        self._attempt = attempt
        self._position = position
        self._settled = False

    @property
    def message(self) -> Message:
        """The delivered message."""
        return self._message

    @property
    def attempt(self) -> int:
        """1 on the first delivery, one more per retry or reclaim."""
        return self._attempt

    @property
    def position(self) -> str:
        """The entry's id in the namespace's stream (``<ms>-<seq>``), for :meth:`rewind`."""
        return self._position

    @property
    def _is_copy(self) -> bool:
        return self._stream == self._subscription.redo

    async def ack(self) -> None:
        """``XACK`` (and, for a copy in the redo stream, ``XDEL``), coalesced with others.

        Queued and sent with the acks of other deliveries in one round trip;
        this returns before Redis answered. If Redis cannot be reached (or
        the transport stops first), the entry stays pending and is
        delivered again.
        """
        if self._settled:
            return
        self._settled = True
        await self._subscription.ack(self._stream, self._entry_id)

    async def retry(self, delay: float) -> None:
        """Ack, and add a copy with the next attempt to the delay set, due in ``delay`` s.

        If Redis cannot be reached, the entry stays pending and is reclaimed
        after ``ack_wait`` (its attempt counted).
        """
        if delay < 0:
            raise ValueError("retry delay must not be negative")
        if self._settled:
            return
        self._settled = True
        subscription = self._subscription
        transport = subscription.transport
        if transport._client is None:  # stopped: the entry stays pending, reclaimed later
            return
        fields = encode_entry(
            self._message, transport.limits, attempt=self._attempt + 1, pos=self._position
        )
        fields[b"retry"] = uuid.uuid4().hex.encode()  # two retries of one event stay two
        member = _pack(fields)
        try:
            await _within(
                transport._scripts["retry"](
                    keys=[self._stream, subscription.delay],
                    args=[
                        subscription.spec.group,
                        self._entry_id,
                        max(0, round(delay * 1000)),
                        member,
                        "1" if self._is_copy else "0",
                    ],
                ),
                transport.timeout,
            )
        except _failures() as exc:
            subscription._log.warning(
                "retry could not be scheduled: reclaimed after ack_wait",
                event_id=self._message.id,
                error=describe(exc),
            )
            return
        subscription.wake.set()
