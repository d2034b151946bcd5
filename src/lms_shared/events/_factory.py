"""Which transport ``LMS_EVENTS_URL`` names: a scheme to a backend, imported on use.

============================  ==========================================
``LMS_EVENTS_URL``            transport
============================  ==========================================
unset, ``sqlite:///PATH``     the embedded log (a SQLite file; unset: in
                              ``LMS_STATE_DIR``), shared by the processes
                              of one machine
``memory://``                 in this process only (tests)
``nats://host:4222``          NATS JetStream (the ``nats`` extra)
``amqp://user:pw@host:5672``  RabbitMQ (the ``rabbitmq`` extra)
``redis://host:6379/0``       Redis Streams (the ``redis`` extra)
============================  ==========================================

A backend's module is imported only when its scheme is used, so a service
on NATS never imports the RabbitMQ client, and a missing driver is a
:class:`~lms_shared.errors.ConfigurationError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lms_shared.clock import Clock
from lms_shared.errors import ConfigurationError
from lms_shared.events._memory import MemoryTransport
from lms_shared.events._transport import Transport
from lms_shared.redaction import redact_url

__all__ = ["TRANSPORTS", "TransportOptions", "transport_from_url"]

TRANSPORTS: dict[str, tuple[str, str, str | None]] = {
    "sqlite": ("lms_shared.events._log", "LogTransport", None),
    "memory": ("lms_shared.events._memory", "MemoryTransport", None),
    "nats": ("lms_shared.events._nats", "NatsTransport", "nats"),
    "tls": ("lms_shared.events._nats", "NatsTransport", "nats"),
    "amqp": ("lms_shared.events._rabbitmq", "RabbitTransport", "rabbitmq"),
    "amqps": ("lms_shared.events._rabbitmq", "RabbitTransport", "rabbitmq"),
    "redis": ("lms_shared.events._redis", "RedisStreamsTransport", "redis"),
    "rediss": ("lms_shared.events._redis", "RedisStreamsTransport", "redis"),
}
"""URL scheme to (module, class, extra that installs its driver)."""

LOG_FILE = "events.sqlite3"
_MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """What every transport may take besides its URL.

    Attributes:
        clock: the service's clock (redelivery, retry delays, leases).
        state_dir: the folder of embedded backends (the log's file).
        namespace: the prefix of streams, queues and keys; every service of
            one platform must use the same one to see each other's events.
    """

    clock: Clock
    state_dir: Path
    namespace: str = "lms"


def transport_from_url(
    url: str | None, *, clock: Clock, state_dir: Path, namespace: str = "lms"
) -> Transport:
    """The transport ``url`` names (the embedded log when unset); nothing connects yet.

    Raises:
        ConfigurationError: an unknown scheme, or a backend whose driver is
            not installed (the message names the extra).
    """
    raw = (url or "").strip()
    if len(raw) > _MAX_URL:
        raise ConfigurationError(f"LMS_EVENTS_URL is longer than {_MAX_URL} characters")
    options = TransportOptions(clock=clock, state_dir=state_dir, namespace=namespace)
    if not raw:
        raw = "sqlite://"  # the log file in the state folder
    scheme, sep, _ = raw.partition("://")
    scheme = scheme.lower()
    if not sep and raw.lower().startswith("sqlite:"):
        scheme, sep = "sqlite", ":"
    if not sep or scheme not in TRANSPORTS:
        known = ", ".join(f"{name}://" for name in TRANSPORTS)
        raise ConfigurationError(
            f"LMS_EVENTS_URL {redact_url(raw)!r} names no known transport; use {known}"
        )
    if scheme == "memory":
        return MemoryTransport(clock)
    module_name, class_name, extra = TRANSPORTS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'lms-shared[{extra}]'" if extra else str(exc)
        raise ConfigurationError(f"the {scheme} event transport is not available: {hint}") from exc
    factory: Any = getattr(module, class_name)
    try:
        if hasattr(factory, "from_url"):
            transport: Transport = factory.from_url(raw, options)
        else:
            transport = factory(raw, clock=clock, namespace=namespace)
    except ValueError as exc:  # a malformed option of the backend's
        reason = str(exc).replace(raw, redact_url(raw))
        raise ConfigurationError(f"LMS_EVENTS_URL {redact_url(raw)!r}: {reason}") from None
    return transport
