"""Prometheus metrics with OpenTelemetry semantic-convention names.

One :class:`Metrics` per service (``service.metrics``) owns its own
``CollectorRegistry`` (several services in one process never collide) and
the metric families every service exposes on ``/metrics``. OpenTelemetry
names are rendered the Prometheus way: dots become underscores and the unit
becomes a suffix (``http.server.request.duration`` in seconds is the
histogram ``http_server_request_duration_seconds``; the attribute
``http.route`` is the label ``http_route``).

Label cardinality is bounded twice: the callers pass bounded values (route
*templates*, never raw paths; the known HTTP methods, others as
``_OTHER``), and every family keeps at most ``max_series`` label sets;
beyond, new ones are counted under ``_OTHER`` values (and logged once).

Several worker processes: prometheus_client's multiprocess mode is on when
``PROMETHEUS_MULTIPROC_DIR`` names a folder *before* the process imports
prometheus_client (it picks its value storage at import, so this cannot be
a setting read later). Each process then writes its values to files there
and any worker's ``/metrics`` answers the sum (counters, histograms) or the
documented aggregate (gauges: ``livesum``, ``livemax``, ``livemin``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from lms_shared.clock import Clock, SystemClock
from lms_shared.observability._logging import get_logger
from lms_shared.observability._process import LoopLagSampler, ProcessFigures

__all__ = [
    "HTTP_BUCKETS",
    "OTHER",
    "UNMATCHED_ROUTE",
    "EventKind",
    "Metrics",
    "MetricsConfig",
    "slo_buckets",
]

#: OpenTelemetry's advice for ``http.server.request.duration`` (seconds).
HTTP_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
#: the label value of whatever is beyond a bound (unknown methods, series over the cap)
OTHER = "_OTHER"
#: the ``http_route`` of requests no route matched (404s of any path): one series
UNMATCHED_ROUTE = "unmatched"

_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only")

EventKind = Literal["published", "consumed", "failed", "retried", "dead_lettered"]

#: what the event bus's delivery results count as (``Outcome.result``)
_DELIVERY_KINDS: dict[str, tuple[EventKind, ...]] = {
    "handled": ("consumed",),
    "retry": ("failed", "retried"),
    "dead": ("dead_lettered",),
    "kept": ("failed",),
}


def slo_buckets(
    threshold: float | None = None, buckets: Sequence[float] = HTTP_BUCKETS
) -> tuple[float, ...]:
    """Histogram bucket boundaries that include the latency SLO ``threshold``.

    A latency SLO ("99% of requests within 300 ms") is computed from the
    bucket whose upper bound is the threshold, so that bound must exist.

    Raises:
        ValueError: a boundary (or the threshold) that is not a positive,
            finite number, or no boundary at all.
    """
    chosen = {float(b) for b in buckets}
    if threshold is not None:
        chosen.add(float(threshold))
    if not chosen or any(not math.isfinite(b) or b <= 0 for b in chosen):
        raise ValueError(f"bucket boundaries are positive finite seconds, got {sorted(chosen)}")
    return tuple(sorted(chosen))


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """How a service measures itself.

    Attributes:
        enabled: serve ``/metrics`` and measure every request.
        buckets: boundaries of the request-duration histograms (seconds),
            the latency threshold included.
        latency_threshold: the latency SLO's threshold (seconds), a bucket
            boundary; ``None`` when the service has none.
        slow_request: requests slower than this (seconds) log a
            ``slow request`` line with their trace id (0 turns it off).
        max_series: label sets kept per metric family at most.
        loop_lag_interval: seconds between two event-loop lag samples.
        readiness_max_age: seconds a readiness result is reused by a scrape
            before the scrape runs the checks itself.
    """

    enabled: bool = True
    buckets: tuple[float, ...] = HTTP_BUCKETS
    latency_threshold: float | None = None
    slow_request: float = 1.0
    max_series: int = 2000
    loop_lag_interval: float = 0.5
    readiness_max_age: float = 10.0

    def __post_init__(self) -> None:
        if self.max_series < 1:
            raise ValueError(f"max_series must be >= 1, got {self.max_series}")
        if self.loop_lag_interval <= 0:
            raise ValueError(f"loop_lag_interval must be positive, got {self.loop_lag_interval}")
        object.__setattr__(self, "buckets", slo_buckets(self.latency_threshold, self.buckets))

    @classmethod
    def from_settings(cls, settings: Any) -> MetricsConfig:
        """``LMS_METRICS_ENABLED``, ``LMS_METRICS_BUCKETS``, ``LMS_METRICS_LATENCY_THRESHOLD``
        and ``LMS_SLOW_REQUEST_THRESHOLD``."""
        return cls(
            enabled=settings.metrics_enabled,
            buckets=tuple(settings.metrics_buckets) or HTTP_BUCKETS,
            latency_threshold=settings.metrics_latency_threshold,
            slow_request=settings.slow_request_threshold,
        )


class BreakerLike(Protocol):
    """What :meth:`Metrics.track_breaker` reads of a circuit breaker."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    def on_state_change(self, listener: Callable[[Any], object]) -> Callable[[], None]: ...


class PoolStatsLike(Protocol):
    """What :meth:`Metrics.track_pool` reads of a pool snapshot (``db.PoolStats``)."""

    @property
    def size(self) -> int: ...

    @property
    def max_overflow(self) -> int: ...

    @property
    def in_use(self) -> int: ...

    @property
    def idle(self) -> int: ...

    @property
    def waits(self) -> int: ...

    @property
    def timeouts(self) -> int: ...


class DeliveryLike(Protocol):
    """What :meth:`Metrics.delivery` reads of the bus's ``Outcome``."""

    @property
    def group(self) -> str: ...

    @property
    def event_type(self) -> str: ...

    @property
    def result(self) -> str: ...


class _Series:
    """The children of one labelled family, cached by label values, at most ``limit``."""

    __slots__ = ("_children", "_family", "_limit", "_log", "_overflow")

    def __init__(self, family: Any, limit: int, log: Any) -> None:
        self._family = family
        self._limit = limit
        self._log = log
        self._children: dict[tuple[str, ...], Any] = {}
        self._overflow: Any = None

    def __len__(self) -> int:
        return len(self._children)

    def get(self, key: tuple[str, ...]) -> Any:
        child = self._children.get(key)
        if child is not None:
            return child
        if len(self._children) < self._limit:
            child = self._children[key] = self._family.labels(*key)
            return child
        if self._overflow is None:
            self._log.warning(
                "metric series cap reached; further label sets are counted as _OTHER",
                metric=self._family._name,
                cap=self._limit,
            )
            self._overflow = self._family.labels(*(OTHER,) * len(key))
        return self._overflow


def _is_multiprocess() -> bool:
    # prometheus_client chose its value storage when it was imported
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class Metrics:
    """The service's metrics: the families, a small typed API, ``/metrics`` rendering.

    It is a lifecycle component (``metrics``): started, it samples the
    event loop's lag (and, in multiprocess mode, the process figures and
    pools); stopped, it ends the sampler and, in multiprocess mode, drops
    this process's live gauges.

    Args:
        service: the service's name (``target_info``).
        version: its version.
        config: buckets, bounds, the slow-request threshold.
        clock: the service clock (the age of the readiness result).
        registry: where the families register; a new one by default.

    Attributes:
        registry: the ``CollectorRegistry``; other parts of the service may
            register their own collectors or families on it.
        multiprocess: values live in ``PROMETHEUS_MULTIPROC_DIR`` files.
    """

    name = "metrics"

    def __init__(
        self,
        service: str,
        version: str,
        config: MetricsConfig | None = None,
        *,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.service = service
        self.version = version
        self.config = config or MetricsConfig()
        self.clock = clock or SystemClock()
        self.registry = registry if registry is not None else CollectorRegistry()
        self.multiprocess = _is_multiprocess()
        self._dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") if self.multiprocess else None
        self._log = get_logger("lms.metrics", service=service)
        reg, cap, buckets = self.registry, self.config.max_series, self.config.buckets

        def series(family: Any) -> _Series:
            return _Series(family, cap, self._log)

        info = Gauge(
            "target_info",
            "The service this process runs (OpenTelemetry resource attributes).",
            ["service_name", "service_version"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        info.labels(service, version).set(1)

        # -- HTTP ---------------------------------------------------------
        self._server = series(
            Histogram(
                "http_server_request_duration_seconds",
                "Duration of HTTP server requests (http.server.request.duration).",
                ["http_request_method", "http_route", "http_response_status_code"],
                buckets=buckets,
                registry=reg,
            )
        )
        self._server_observe: dict[tuple[str, str | None, int], Callable[[float], None]] = {}
        self._client = series(
            Histogram(
                "http_client_request_duration_seconds",
                "Duration of calls to other services (http.client.request.duration);"
                " server_address is the called service's name.",
                [
                    "server_address",
                    "http_request_method",
                    "http_response_status_code",
                    "error_type",
                ],
                buckets=buckets,
                registry=reg,
            )
        )
        # -- events -------------------------------------------------------
        dest, group = "messaging_destination_name", "messaging_consumer_group_name"
        self._events: dict[EventKind, _Series] = {
            "published": series(
                Counter(
                    "messaging_client_sent_messages",
                    "Events published (messaging.client.sent.messages), by type.",
                    [dest, group],
                    registry=reg,
                )
            ),
            "consumed": series(
                Counter(
                    "messaging_client_consumed_messages",
                    "Events handled (messaging.client.consumed.messages), by type and group.",
                    [dest, group],
                    registry=reg,
                )
            ),
            "failed": series(
                Counter(
                    "lms_messaging_failed_messages",
                    "Deliveries whose handler failed, by type and group.",
                    [dest, group],
                    registry=reg,
                )
            ),
            "retried": series(
                Counter(
                    "lms_messaging_retried_messages",
                    "Deliveries scheduled for another attempt, by type and group.",
                    [dest, group],
                    registry=reg,
                )
            ),
            "dead_lettered": series(
                Counter(
                    "lms_messaging_dead_lettered_messages",
                    "Events given up and dead-lettered, by type and group.",
                    [dest, group],
                    registry=reg,
                )
            ),
        }
        self._lag = series(
            Gauge(
                "lms_messaging_consumer_lag_messages",
                "Events waiting for a consumer group (the largest any process saw).",
                [dest, group],
                registry=reg,
                multiprocess_mode="livemax",
            )
        )
        # -- database pools ------------------------------------------------
        pool = "db_client_connection_pool_name"
        self._pool_count = Gauge(
            "db_client_connection_count",
            "Connections by state (db.client.connection.count), summed over processes.",
            [pool, "db_client_connection_state"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._pool_max = Gauge(
            "db_client_connection_max",
            "Connections allowed at most (db.client.connection.max), summed over processes.",
            [pool],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._pool_timeouts = Counter(
            "db_client_connection_timeouts",
            "Checkouts that gave up waiting for a connection (db.client.connection.timeouts).",
            [pool],
            registry=reg,
        )
        self._pool_waits = Counter(
            "lms_db_client_connection_waits",
            "Checkouts that found the pool saturated and waited.",
            [pool],
            registry=reg,
        )
        self._pools: dict[str, tuple[Callable[[], PoolStatsLike], list[int]]] = {}
        # -- breakers, readiness, the event loop --------------------------
        self._breaker = Gauge(
            "lms_circuit_breaker_state",
            "1 for the state each circuit breaker of a called service is in, 0 for the others.",
            ["breaker", "state"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self._breakers: set[str] = set()
        self._ready = Gauge(
            "lms_health_ready",
            "1 while the readiness checks pass, 0 while one fails (the lowest over processes).",
            registry=reg,
            multiprocess_mode="livemin",
        )
        self._ready_at: float | None = None
        self._loop_lag = Histogram(
            "lms_event_loop_lag_seconds",
            "How late the event loop ran a timer (sampled every loop_lag_interval).",
            buckets=_LAG_BUCKETS,
            registry=reg,
        )
        self._process: ProcessFigures | None = None
        if self.multiprocess:
            # custom collectors do not work across processes: copy into gauges
            self._process = ProcessFigures(reg)
        else:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)
        self._sampler = LoopLagSampler(
            self._loop_lag.observe, self.config.loop_lag_interval, on_tick=self._tick
        )

    def __repr__(self) -> str:
        mode = "multiprocess" if self.multiprocess else "single process"
        return f"Metrics({self.service!r}, {mode})"

    # -- the API the chassis calls ----------------------------------------

    def http_request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """Count one served request (the HTTP middleware calls this).

        Args:
            method: the request method (unknown ones become ``_OTHER``).
            route: the matched route's *template*; ``None`` when none matched.
            status: the response status.
            seconds: from the request's arrival to the end of its response.
        """
        key = (method, route, status)
        observe = self._server_observe.get(key)
        if observe is None:
            observe = self._server_child(key)
        observe(seconds)

    def _server_child(self, key: tuple[str, str | None, int]) -> Callable[[float], None]:
        method, route, status = key
        labels = (
            method if method in _METHODS else OTHER,
            UNMATCHED_ROUTE if route is None else route,
            str(status),
        )
        observe: Callable[[float], None] = self._server.get(labels).observe
        if len(self._server_observe) < self.config.max_series:
            self._server_observe[key] = observe
        return observe

    def client_call(
        self,
        dependency: str,
        method: str,
        status: int | None,
        seconds: float,
        *,
        error: str | None = None,
    ) -> None:
        """Count one call to another service (``http.client.request.duration``).

        Args:
            dependency: the called service's name (``server_address``).
            method: the HTTP method.
            status: the answer's status; ``None`` when none came (timeout,
                connection refused, breaker open).
            seconds: the call's duration (all attempts).
            error: what went wrong without a status (an exception's class
                name, ``timeout``); a status >= 400 is its own error type.
        """
        error_type = error or (str(status) if status is not None and status >= 400 else "")
        labels = (
            dependency,
            method if method in _METHODS else OTHER,
            "" if status is None else str(status),
            error_type,
        )
        self._client.get(labels).observe(seconds)

    def event(self, kind: EventKind, event_type: str, group: str = "", count: int = 1) -> None:
        """Count events published, consumed, failed, retried or dead-lettered.

        Args:
            kind: what happened.
            event_type: the CloudEvents ``type`` (``messaging_destination_name``).
            group: the consumer group (empty for ``published``).
            count: how many (a batch).
        """
        self._events[kind].get((event_type, group)).inc(count)

    def delivery(self, outcome: DeliveryLike) -> None:
        """Count one delivery from the bus's ``Outcome`` (``bus.observe(metrics.delivery)``).

        ``handled`` counts as consumed, ``retry`` as failed and retried,
        ``dead`` as dead-lettered, ``kept`` as failed; duplicates and
        skipped replays are not counted.
        """
        for kind in _DELIVERY_KINDS.get(outcome.result, ()):
            self.event(kind, outcome.event_type, outcome.group)

    def consumer_lag(self, event_type: str, group: str, messages: float) -> None:
        """Record how many events wait for ``group`` (a transport's lag figure)."""
        self._lag.get((event_type, group)).set(messages)

    def ready(self, ok: bool) -> None:
        """Record the outcome of a readiness evaluation (``lms_health_ready``)."""
        self._ready.set(1 if ok else 0)
        self._ready_at = self.clock.monotonic()

    def readiness_stale(self) -> bool:
        """Whether no readiness result is younger than ``readiness_max_age``."""
        at = self._ready_at
        return at is None or self.clock.monotonic() - at >= self.config.readiness_max_age

    def track_breaker(self, breaker: BreakerLike) -> None:
        """Publish a called service's breaker state (``lms_circuit_breaker_state``).

        Per-instance breakers (``identity/10.0.0.7:8000``) are skipped: their
        number follows deployments (the service's breaker is the alert).
        Give it to ``BreakerRegistry.on_create``.
        """
        name = breaker.name
        if "/" in name or name in self._breakers or len(self._breakers) >= self.config.max_series:
            return
        self._breakers.add(name)
        self._set_breaker(name, str(breaker.state))
        breaker.on_state_change(self._breaker_changed)

    def _breaker_changed(self, change: Any) -> None:
        self._set_breaker(str(change.breaker), str(change.to_state))

    def _set_breaker(self, name: str, state: str) -> None:
        current = state.lower()
        for each in _BREAKER_STATES:
            self._breaker.labels(name, each).set(1 if each == current else 0)

    def track_pool(self, name: str, stats: Callable[[], PoolStatsLike]) -> None:
        """Publish a connection pool's figures, read from ``stats()`` when sampled.

        Args:
            name: the pool's name (``db_client_connection_pool_name``).
            stats: returns a snapshot (``Database.pool_stats``).
        """
        self._pools[name] = (stats, [0, 0])

    # -- sampling and rendering -------------------------------------------

    def refresh(self) -> None:
        """Read the sampled figures now (pools; process figures in multiprocess mode)."""
        for name, (stats, seen) in tuple(self._pools.items()):
            try:
                snapshot = stats()
            except Exception:  # noqa: S112 - a pool not yet open, or closed: no figures
                continue
            self._pool_count.labels(name, "used").set(snapshot.in_use)
            self._pool_count.labels(name, "idle").set(snapshot.idle)
            self._pool_max.labels(name).set(snapshot.size + snapshot.max_overflow)
            # cumulative in the pool, a counter here: add what is new
            if snapshot.waits > seen[0]:
                self._pool_waits.labels(name).inc(snapshot.waits - seen[0])
            if snapshot.timeouts > seen[1]:
                self._pool_timeouts.labels(name).inc(snapshot.timeouts - seen[1])
            seen[0], seen[1] = max(seen[0], snapshot.waits), max(seen[1], snapshot.timeouts)
        if self._process is not None:
            self._process.sample()

    def _tick(self) -> None:
        if self.multiprocess:  # only files are shared: write them now and then
            self.refresh()

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition: ``(body, content type)``, OpenMetrics when ``accept`` asks.

        In multiprocess mode, the sum over every process writing to
        ``PROMETHEUS_MULTIPROC_DIR``.
        """
        self.refresh()
        registry = self.registry
        if self._dir is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self._dir)  # type: ignore[no-untyped-call]
        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One sample's value in this process's registry (tests, debugging)."""
        return self.registry.get_sample_value(name, labels or {})

    async def start(self) -> None:
        """Start sampling the event loop's lag."""
        self._sampler.start()

    async def stop(self) -> None:
        """Stop sampling; in multiprocess mode, drop this process's live gauges."""
        await self._sampler.stop()
        if self._dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self._dir)  # type: ignore[no-untyped-call]
