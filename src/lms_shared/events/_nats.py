"""The NATS JetStream transport (the production default), on the official client nats-py.

Layout on the broker:

* **One stream per namespace**: ``<namespace>-events`` holds the subjects
  ``<namespace>.events.>`` with limits retention (acked events stay until
  ``max_age``, so :meth:`NatsTransport.rewind` works), file storage,
  ``replicas`` copies and ``max_msg_size`` at the envelope limit. It is
  created when missing and otherwise left as operators configured it.
* **Subjects by event type**: ``<namespace>.events.<type>``, each dot part
  of the type one token (see :func:`~lms_shared.events._nats_binding.subject_for`).
* **One durable pull consumer per group and type set** (named after the
  group plus a hash of the types; its description records both): the
  subscriptions of one group with the same types compete on it, every
  group has its own (fan-out). It starts at the end of the stream
  (``DeliverPolicy.NEW``), acks explicitly, redelivers after ``ack_wait``.
  On servers before 2.10 (one filter subject per consumer) a consumer of
  several types filters on the whole namespace and acks the other types
  unseen.
* **Binary-mode CloudEvents**: ``ce-*`` headers, data as the payload
  (``_nats_binding``); structured mode is read too.

Behaviour:

* ``publish`` pipelines the batch and returns once JetStream acknowledged
  every message (``PublishFailed`` otherwise, after ``publish_timeout``).
  No ``Nats-Msg-Id`` is set: a republished event (an unconfirmed publish
  tried again, a dead letter replayed) is stored again and consumers
  deduplicate by event id.
* A subscription (``_nats_consumer``) asks with batched pull requests for
  at most as many messages as it has free handler slots (``concurrency``),
  so it never prefetches beyond them and the other members of its group get
  the rest. Requests expire after ``pull_expires`` and are renewed; after a
  reconnect or a leader change they are renewed at once or after
  ``pull_expires``. An ack is one message to the server, not waited for
  (``stop`` flushes the connection): a lost ack is a redelivery.
* ``Delivery.retry(delay)`` is a native delayed ``NAK``; ``attempt`` is
  JetStream's delivery count; ``position`` is the stream sequence.
* ``max_deliver`` (off by default) makes the server stop redelivering; the
  bus dead-letters after its own attempts, so leave it off or above them.
* **Order**: one subscription with ``concurrency=1`` sees the stream order.
  With more concurrency, events with the same ``partitionkey`` are still
  handled one after another, in stream order, *within one subscription*.
  Across the members of a group JetStream (2.9) has no key affinity: two
  members may handle two events of one key at the same time. Keep one
  member per group (or ``concurrency=1``) where strict order per key
  across processes matters. Redeliveries may come later than newer events.
* **Rewind** deletes the group's consumers of those types and creates them
  again from a time (``DeliverPolicy.BY_START_TIME``) or a stream sequence
  (``BY_START_SEQUENCE``). Events that the old consumer still had
  unacknowledged before that point are not lost: the new consumer then
  starts at the oldest of them. A consumer of more types than asked is
  rewound for all of its types (at least once, deduplicated by the inbox).
* Messages that cannot be a :class:`Message` (no CloudEvents headers,
  oversized or malformed headers) are terminated, logged with their stream
  sequence and counted in :attr:`NatsTransport.unreadable`; they stay in the
  stream for inspection. Everything else, valid or not, reaches the handler.

Timers here are the broker's (``ack_wait``, retry delays) and the event
loop's monotonic time for pull requests: this transport does not run on
an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from lms_shared.events._envelope import DEFAULT_LIMITS, EnvelopeLimits
from lms_shared.events._errors import InvalidEvent, PublishFailed, TransportUnavailable
from lms_shared.events._nats_binding import nats_headers, subject_for
from lms_shared.events._nats_consumer import ConsumerSettings, NatsSubscription, describe
from lms_shared.events._transport import Handler, Message, SubscriptionSpec
from lms_shared.observability import get_logger

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.api import ConsumerConfig, ConsumerInfo

__all__ = ["NatsTransport", "consumer_name"]

_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_STATUS = "Status"
_PUBLISH_WINDOW = 4096
_SUBJECTS_KEPT = 1024
_URL_OPTIONS = {"namespace", "replicas", "max_age", "name"}


def consumer_name(group: str, types: Sequence[str]) -> str:
    """The durable consumer of ``group`` for exactly ``types`` (order does not matter)."""
    key = json.dumps([group, sorted(set(types))]).encode()
    return f"{group.replace('.', '_')}-{hashlib.sha256(key).hexdigest()[:12]}"


class _Pending:
    """The acknowledgements one window of a publish still waits for."""

    __slots__ = ("done", "left")

    def __init__(self, done: asyncio.Future[None], left: int) -> None:
        self.done = done
        self.left = left

    def confirm(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.done.set_result(None)


@dataclass(frozen=True, slots=True)
class _Owner:
    """Who a consumer belongs to, as recorded in its description."""

    group: str
    types: tuple[str, ...]

    def describe(self) -> str:
        return json.dumps({"lms": "events", "group": self.group, "types": list(self.types)})

    @classmethod
    def read(cls, description: str | None) -> _Owner | None:
        try:
            data = json.loads(description or "")
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("lms") != "events":
            return None
        group, types = data.get("group"), data.get("types")
        if not isinstance(group, str) or not isinstance(types, list):
            return None
        return cls(group, tuple(t for t in types if isinstance(t, str)))


class NatsTransport:
    """A :class:`~lms_shared.events.Transport` on NATS JetStream (see the module doc).

    Args:
        servers: one ``nats://`` (or ``tls://``) URL or several of one
            cluster; credentials may be in the URL.
        namespace: names the stream (``<namespace>-events``) and prefixes its
            subjects (``<namespace>.events.``); lower-case ``a-z0-9_-``.
        replicas: copies of the stream when this transport creates it (1-5).
        max_age: seconds the stream keeps events (0: no limit), so how far
            back :meth:`rewind` reaches, when this transport creates it.
        max_deliver: deliveries after which the server stops redelivering
            (``None``: no limit; the bus dead-letters by its own count).
        max_ack_pending: unsettled deliveries (delayed retries included) a
            group's consumer may have before the server holds back.
        limits: bounds of incoming messages and of the stream's message size.
        connect_timeout: seconds :meth:`start` waits for a first connection.
        request_timeout: seconds each JetStream API call may take.
        publish_timeout: seconds :meth:`publish` waits for the acknowledgements.
        pull_expires: seconds an open pull request lives before it is renewed.
        client_name: the connection's name on the server.

    Raises:
        ValueError: an argument is out of range.
    """

    keeps_history = True
    native_delay = True

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        namespace: str = "lms",
        replicas: int = 1,
        max_age: float = 7 * 24 * 3600.0,
        max_deliver: int | None = None,
        max_ack_pending: int = 10_000,
        limits: EnvelopeLimits = DEFAULT_LIMITS,
        connect_timeout: float = 5.0,
        request_timeout: float = 5.0,
        publish_timeout: float = 10.0,
        pull_expires: float = 5.0,
        client_name: str | None = None,
    ) -> None:
        if not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"namespace {namespace!r} must match {_NAMESPACE.pattern}")
        if not 1 <= replicas <= 5:
            raise ValueError("replicas must be between 1 and 5")
        if max_age < 0:
            raise ValueError("max_age must not be negative")
        if max_deliver is not None and max_deliver < 1:
            raise ValueError("max_deliver must be at least 1 (or None)")
        if max_ack_pending < 1:
            raise ValueError("max_ack_pending must be at least 1")
        for label, value in (
            ("connect_timeout", connect_timeout),
            ("request_timeout", request_timeout),
            ("publish_timeout", publish_timeout),
            ("pull_expires", pull_expires),
        ):
            if not value > 0 or math.isinf(value):
                raise ValueError(f"{label} must be a positive number of seconds")
        self.name = "nats"
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        if not self.servers:
            raise ValueError("give at least one NATS server URL")
        self.namespace = namespace
        self.stream = f"{namespace}-events"
        self.prefix = f"{namespace}.events"
        self.replicas = replicas
        self.max_age = max_age
        self.max_deliver = max_deliver
        self.max_ack_pending = max_ack_pending
        self.limits = limits
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.publish_timeout = publish_timeout
        self.pull_expires = pull_expires
        self.client_name = client_name or f"lms-events-{namespace}"
        self.unreadable = 0
        """Messages terminated because they could not be read as a :class:`Message`."""
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._multi_filter = False
        self._acks_inbox: str | None = None
        self._acks: dict[str, _Pending] = {}
        self._stored = b'{"stream":' + json.dumps(self.stream).encode() + b","
        self._subjects: dict[str, str] = {}
        self._tokens = itertools.count(1)
        self._subscriptions: set[NatsSubscription] = set()
        self._log = get_logger("lms.events.nats", namespace=namespace)
        self._consumer_settings = ConsumerSettings(
            stream=self.stream,
            pull_expires=pull_expires,
            limits=limits,
            log=self._log,
            on_unreadable=self._count_unreadable,
            on_stopped=self._subscriptions.discard,
        )

    @classmethod
    def from_url(cls, url: str, options: object = None, /, **kwargs: Any) -> NatsTransport:
        """A transport from ``nats://[user:password@]host:port[,host:port...][?options]``.

        URL options: ``namespace``, ``replicas``, ``max_age`` (seconds) and
        ``name`` (the client name). Keyword ``kwargs`` (the constructor's)
        win over them, and they over ``options.namespace`` (the factory's
        :class:`~lms_shared.events.TransportOptions`, when given). ``tls://``
        connects with TLS.

        Raises:
            ValueError: another scheme, no host, or an unknown or malformed option.
        """
        scheme, sep, rest = url.strip().partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in {"nats", "tls"}:
            raise ValueError("a NATS URL starts with nats:// or tls://")
        rest, _, query = rest.partition("?")
        hosts = rest.partition("/")[0]
        credentials, at, hosts = hosts.rpartition("@")
        servers = [
            f"{scheme}://{credentials}{at}{host.strip()}"
            for host in hosts.split(",")
            if host.strip()
        ]
        if not servers:
            raise ValueError("a NATS URL names at least one host")
        params = dict(parse_qsl(query, keep_blank_values=True))
        unknown = set(params) - _URL_OPTIONS
        if unknown:
            raise ValueError(f"unknown NATS URL options: {', '.join(sorted(unknown))}")
        arguments: dict[str, Any] = {}
        namespace = getattr(options, "namespace", None)
        if isinstance(namespace, str):
            arguments["namespace"] = namespace
        try:
            if "namespace" in params:
                arguments["namespace"] = params["namespace"]
            if "replicas" in params:
                arguments["replicas"] = int(params["replicas"])
            if "max_age" in params:
                arguments["max_age"] = float(params["max_age"])
            if "name" in params:
                arguments["client_name"] = params["name"]
        except ValueError:
            raise ValueError("NATS URL options replicas and max_age must be numbers") from None
        arguments.update(kwargs)
        return cls(servers, **arguments)

    def __repr__(self) -> str:
        return f"NatsTransport(namespace={self.namespace!r}, servers={len(self.servers)})"

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Connect, and create the namespace's stream when missing (idempotent).

        Raises:
            TransportUnavailable: no server answered within ``connect_timeout``,
                JetStream is not enabled, or the stream cannot be created.
        """
        if self._nc is not None:
            return
        import nats.aio.client  # noqa: PLC0415 - the driver is optional (the nats extra)
        import nats.errors  # noqa: PLC0415

        nc = nats.aio.client.Client()
        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=self.servers,
                    name=self.client_name,
                    connect_timeout=max(1, math.ceil(self.connect_timeout)),
                    reconnect_time_wait=1,
                    max_reconnect_attempts=-1,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                self.connect_timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await self._close_quietly(nc)
            raise TransportUnavailable(f"NATS is not reachable: {type(exc).__name__}") from None
        js = nc.jetstream(timeout=self.request_timeout)
        try:
            await self._ensure_stream(js)
            inbox = nc.new_inbox()
            await nc.subscribe(f"{inbox}.*", cb=self._on_publish_ack)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await self._close_quietly(nc)
            raise TransportUnavailable(
                f"JetStream stream {self.stream!r} is unavailable: {describe(exc)}"
            ) from None
        version = nc.connected_server_version
        self._multi_filter = (version.major, version.minor) >= (2, 10)
        self._nc, self._js, self._acks_inbox = nc, js, inbox

    async def stop(self) -> None:
        """Stop every subscription without draining, flush the acks, and disconnect."""
        nc, self._nc, self._js, self._acks_inbox = self._nc, None, None, None
        acks, self._acks = self._acks, {}
        for pending in acks.values():
            if not pending.done.done():
                pending.done.set_exception(PublishFailed("the NATS transport stopped"))
        for subscription in list(self._subscriptions):
            await subscription.stop(drain=False)
        self._subscriptions.clear()
        if nc is not None:
            await self._close_quietly(nc)

    async def ping(self) -> None:
        """Check the stream answers through JetStream.

        Raises:
            TransportUnavailable: not started, disconnected, or no answer.
        """
        import nats.errors  # noqa: PLC0415

        nc, js = self._nc, self._js
        if nc is None or js is None:
            raise TransportUnavailable("the NATS transport is not started")
        if not nc.is_connected:
            raise TransportUnavailable("NATS is disconnected (reconnecting)")
        try:
            await js.stream_info(self.stream)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise TransportUnavailable(f"JetStream does not answer: {describe(exc)}") from None

    # -- publish ---------------------------------------------------------------

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish every message, pipelined; return once JetStream acknowledged each.

        The messages go out in order, each with ``Nats-Expected-Stream``;
        their acknowledgements are awaited together, ``_PUBLISH_WINDOW`` at
        a time (never more outstanding).

        Raises:
            InvalidEvent: a message is larger than ``limits`` allow (nothing
                is sent).
            PublishFailed: not started, refused (over the stream's message
                size, no stream, another stream), or not acknowledged within
                ``publish_timeout``; any subset may have been stored.
        """
        import nats.errors  # noqa: PLC0415

        nc = self._nc
        if nc is None or self._acks_inbox is None:
            raise PublishFailed("the NATS transport is not started")
        for message in messages:
            self._check_size(message)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        inbox = f"{self._acks_inbox}."
        for start in range(0, len(messages), _PUBLISH_WINDOW):
            window = messages[start : start + _PUBLISH_WINDOW]
            pending = _Pending(loop.create_future(), len(window))
            tokens: list[str] = []
            try:
                for message in window:
                    token = str(next(self._tokens))
                    self._acks[token] = pending
                    tokens.append(token)
                    headers = nats_headers(message)
                    headers["Nats-Expected-Stream"] = self.stream
                    await nc.publish(
                        self._subject(message.type),
                        message.data,
                        reply=inbox + token,
                        headers=headers,
                    )
                await self._confirmed(pending.done, deadline)
            except (OSError, nats.errors.Error) as exc:
                raise PublishFailed(f"the publish did not go out: {describe(exc)}") from None
            finally:
                for token in tokens:
                    self._acks.pop(token, None)
                if not pending.done.done():
                    pending.done.cancel()
                elif not pending.done.cancelled():
                    pending.done.exception()  # retrieved (raised above, or superseded)

    def _subject(self, type: str) -> str:
        subject = self._subjects.get(type)
        if subject is None:
            if len(self._subjects) >= _SUBJECTS_KEPT:
                self._subjects.clear()
            subject = self._subjects[type] = subject_for(self.prefix, type)
        return subject

    def _check_size(self, message: Message) -> None:
        """The bound every reader applies, applied before anything is sent."""
        limits = self.limits
        if len(message.attributes) > limits.max_attributes:
            raise InvalidEvent(f"an event carries at most {limits.max_attributes} attributes")
        attributes = message.attributes
        chars = sum(map(len, attributes)) + sum(map(len, attributes.values()))
        size = len(message.data) + chars
        if size + 3 * chars > limits.max_bytes:  # UTF-8 takes at most 4 bytes a character
            size = len(message.data) + sum(
                len(name.encode()) + len(value.encode()) for name, value in attributes.items()
            )
        if size > limits.max_bytes:
            raise InvalidEvent(f"the event is larger than {limits.max_bytes} bytes")

    async def _confirmed(self, future: asyncio.Future[None], deadline: float) -> None:
        left = deadline - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(future, max(left, 0.001))
        except TimeoutError:
            raise PublishFailed(
                f"JetStream did not acknowledge within {self.publish_timeout} s"
            ) from None

    async def _on_publish_ack(self, msg: Msg) -> None:
        """Count the acknowledgement (or refusal) in the publish it answers."""
        pending = self._acks.pop(msg.subject.rpartition(".")[2], None)
        if pending is None or pending.done.done():
            return
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is not None:
            reason = f"status {status}"
            if status == "503":  # also every publish while a cluster elects the stream's leader
                reason = "no responders: no stream takes the subject, or it has no leader yet"
            pending.done.set_exception(PublishFailed(f"JetStream refused the publish: {reason}"))
            return
        data = msg.data
        if data.startswith(self._stored):  # the usual answer: {"stream":"<ours>", "seq":...}
            pending.confirm()
            return
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            pending.done.set_exception(PublishFailed("JetStream answered the publish with no ack"))
        elif isinstance(error := answer.get("error"), dict):
            text = str(error.get("description") or error.get("code"))[:200]
            pending.done.set_exception(PublishFailed(f"JetStream refused the publish: {text}"))
        elif answer.get("stream") != self.stream:
            pending.done.set_exception(PublishFailed("the publish was not stored in the stream"))
        else:
            pending.confirm()

    # -- subscribe -------------------------------------------------------------

    async def subscribe(self, spec: SubscriptionSpec, handler: Handler) -> NatsSubscription:
        """Bind to (creating when missing) the consumer of ``spec.group`` and ``spec.types``.

        A consumer created here starts at the end of the stream. One that
        exists keeps its position; its ``ack_wait`` is updated to the spec's.

        Raises:
            TransportUnavailable: not started, or JetStream did not answer.
        """
        import nats.errors  # noqa: PLC0415
        import nats.js.errors  # noqa: PLC0415

        nc, js = self._nc, self._js
        if nc is None or js is None:
            raise TransportUnavailable("the NATS transport is not started")
        name = consumer_name(spec.group, spec.types)
        try:
            try:
                info = await js.consumer_info(self.stream, name)
            except nats.js.errors.NotFoundError:
                owner = _Owner(spec.group, tuple(sorted(spec.types)))
                await js.add_consumer(
                    self.stream, self._consumer_config(name, owner, spec.ack_wait)
                )
            else:
                if abs((info.config.ack_wait or 0) - spec.ack_wait) > 0.001:
                    info.config.ack_wait = spec.ack_wait
                    await js.add_consumer(self.stream, info.config)
            subscription = NatsSubscription(self._consumer_settings, nc, spec, handler, name)
            await subscription.start()
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise TransportUnavailable(
                f"cannot subscribe group {spec.group!r}: {describe(exc)}"
            ) from None
        self._subscriptions.add(subscription)
        return subscription

    def _consumer_config(
        self,
        name: str,
        owner: _Owner,
        ack_wait: float,
        *,
        since: datetime | None = None,
        start_seq: int | None = None,
        from_start: bool = False,
    ) -> ConsumerConfig:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: PLC0415

        subjects = [subject_for(self.prefix, t) for t in owner.types]
        if start_seq is not None:
            policy = DeliverPolicy.BY_START_SEQUENCE
        elif since is not None:
            policy = DeliverPolicy.BY_START_TIME
        else:
            policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
        config = ConsumerConfig(
            durable_name=name,
            description=owner.describe(),
            deliver_policy=policy,
            opt_start_seq=start_seq,
            opt_start_time=since if start_seq is None else None,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=self.max_deliver or -1,
            max_ack_pending=self.max_ack_pending,
        )
        if len(subjects) == 1:
            config.filter_subject = subjects[0]
        elif self._multi_filter:
            config.filter_subjects = subjects
        else:
            config.filter_subject = f"{self.prefix}.>"
        return config

    # -- rewind ----------------------------------------------------------------

    async def rewind(
        self,
        group: str,
        types: Sequence[str],
        *,
        since: datetime | None = None,
        position: str | None = None,
    ) -> None:
        """Deliver the group's retained events of ``types`` again, from a point on.

        Every consumer of ``group`` whose types include one of ``types`` is
        created again from the first event stored at or after ``since``, or
        at or after stream sequence ``position`` (with neither: the oldest
        retained); when the group has none, one for exactly ``types`` is
        created there, for a later :meth:`subscribe` to bind to.

        Raises:
            ValueError: both points given, a ``position`` that is not a
                stream sequence, a naive ``since``, or no types.
            TransportUnavailable: not started, or JetStream did not answer.
        """
        import nats.errors  # noqa: PLC0415

        if since is not None and position is not None:
            raise ValueError("give since or position, not both")
        start_seq: int | None = None
        if position is not None:
            if not position.isdigit() or int(position) < 1:
                raise ValueError(f"{position!r} is not a NATS stream sequence")
            start_seq = int(position)
        if since is not None and since.utcoffset() is None:
            raise ValueError("since must be timezone-aware")
        wanted = set(types)
        if isinstance(types, str) or not wanted:
            raise ValueError("types must be a non-empty sequence of event types")
        js = self._js
        if js is None:
            raise TransportUnavailable("the NATS transport is not started")
        try:
            targets: list[tuple[str, _Owner, float]] = []
            for info in await js.consumers_info(self.stream):
                owner = _Owner.read(info.config.description)
                if owner is not None and owner.group == group and wanted & set(owner.types):
                    targets.append((info.name, owner, info.config.ack_wait or 30.0))
            if not targets:
                owner = _Owner(group, tuple(sorted(wanted)))
                targets.append((consumer_name(group, owner.types), owner, 30.0))
            for name, owner, ack_wait in targets:
                await self._recreate(js, name, owner, ack_wait, since, start_seq)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise TransportUnavailable(f"cannot rewind group {group!r}: {describe(exc)}") from None
        names = {name for name, _, _ in targets}
        for subscription in self._subscriptions:
            if subscription.consumer in names:
                subscription.renew()

    async def _recreate(
        self,
        js: JetStreamContext,
        name: str,
        owner: _Owner,
        ack_wait: float,
        since: datetime | None,
        start_seq: int | None,
    ) -> None:
        import nats.js.errors  # noqa: PLC0415

        try:
            old: ConsumerInfo | None = await js.consumer_info(self.stream, name)
        except nats.js.errors.NotFoundError:
            old = None
        if old is not None:
            await js.delete_consumer(self.stream, name)
        wanted = self._consumer_config(
            name, owner, ack_wait, since=since, start_seq=start_seq, from_start=True
        )
        created = await js.add_consumer(self.stream, wanted)
        if old is None or not (old.num_ack_pending or old.num_pending):
            return
        # the old consumer still owed events: never start after the oldest of them
        first = _first_sequence(created)
        floor = await self._floor(js, name, owner, ack_wait, old)
        if floor < first:
            await js.delete_consumer(self.stream, name)
            await js.add_consumer(
                self.stream, self._consumer_config(name, owner, ack_wait, start_seq=floor)
            )
            self._log.info("rewind starts earlier", consumer=name, sequence=floor, asked=first)

    async def _floor(
        self, js: JetStreamContext, name: str, owner: _Owner, ack_wait: float, old: ConsumerInfo
    ) -> int:
        """The stream sequence of the oldest event ``old`` may not have had acked."""
        from nats.js.api import DeliverPolicy  # noqa: PLC0415

        if old.ack_floor is not None and old.ack_floor.consumer_seq:
            return old.ack_floor.stream_seq + 1
        config = old.config
        if config.deliver_policy == DeliverPolicy.ALL:
            return 1
        if config.deliver_policy == DeliverPolicy.BY_START_SEQUENCE and config.opt_start_seq:
            return config.opt_start_seq
        since = config.opt_start_time
        if config.deliver_policy != DeliverPolicy.BY_START_TIME or since is None:
            since = old.created  # NEW and the like start after their creation
        probe = self._consumer_config(f"{name}-floor", owner, ack_wait, since=since)
        probe.description = None  # not one of the group's consumers
        info = await js.add_consumer(self.stream, probe)
        await js.delete_consumer(self.stream, info.name)
        return _first_sequence(info)

    # -- internals -------------------------------------------------------------

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        import nats.js.errors  # noqa: PLC0415
        from nats.js.api import (  # noqa: PLC0415
            DiscardPolicy,
            RetentionPolicy,
            StorageType,
            StreamConfig,
        )

        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            info = None
        subjects = [f"{self.prefix}.>"]
        if info is None:
            await js.add_stream(
                StreamConfig(
                    name=self.stream,
                    description=f"lms-shared events of namespace {self.namespace}",
                    subjects=subjects,
                    retention=RetentionPolicy.LIMITS,
                    storage=StorageType.FILE,
                    discard=DiscardPolicy.OLD,
                    num_replicas=self.replicas,
                    max_age=self.max_age,
                    max_msg_size=self.limits.max_bytes,
                )
            )
        elif list(info.config.subjects or ()) != subjects:
            info.config.subjects = subjects
            await js.update_stream(info.config)

    async def _close_quietly(self, nc: Client) -> None:
        import nats.errors  # noqa: PLC0415

        with contextlib.suppress(TimeoutError, OSError, nats.errors.Error):
            if nc.is_connected:
                await nc.flush(timeout=1)
        with contextlib.suppress(TimeoutError, OSError, nats.errors.Error):
            await nc.close()

    def _count_unreadable(self) -> None:
        self.unreadable += 1

    async def _on_error(self, exc: Exception) -> None:
        self._log.warning("nats client error", error=describe(exc))

    async def _on_disconnected(self) -> None:
        if self._nc is not None:  # not our own stop
            self._log.warning("nats disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        self._log.info("nats reconnected")
        for subscription in self._subscriptions:
            subscription.renew()


def _first_sequence(info: ConsumerInfo) -> int:
    return (info.delivered.stream_seq if info.delivered is not None else 0) + 1
