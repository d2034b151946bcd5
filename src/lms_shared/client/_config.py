"""How calls to one service are made: :class:`ClientConfig`, per target.

Read from the settings (``LMS_CLIENT_TIMEOUT``, ``LMS_CLIENT_RETRIES``,
``LMS_CLIENT_MESH``, ``LMS_CLIENT_MESH_NAMESPACE`` and, per called
service, ``LMS_CLIENT_TARGETS``), then overridden in code::

    grading = service.client("grading", timeout=2.0, retries=0)

Under a service mesh (``LMS_CLIENT_MESH=istio`` or ``linkerd``) the sidecar
balances and retries: the client calls the service's DNS name once, with
no retry and no hedge (retries at two layers multiply), and keeps its
deadline, headers, credentials and service breaker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from lms_shared.errors import SettingsError
from lms_shared.resilience import Backoff, BreakerConfig
from lms_shared.settings import Settings

__all__ = ["DEFAULT_BREAKER", "ClientConfig", "Mesh"]

Mesh = Literal["none", "istio", "linkerd"]

DEFAULT_BREAKER = BreakerConfig(
    failure_rate_threshold=50.0,
    sliding_window_size=20,
    minimum_number_of_calls=5,
    wait_duration_in_open_state=5.0,
    permitted_number_of_calls_in_half_open_state=2,
)
"""The client's breaker (per service and per instance): opens fast, probes after 5 s.

Resilience4j's defaults (100 calls, 60 s open) suit a high-traffic JVM
service; between the services of one platform a dependency that fails 5
calls in a row should be left alone within a second, and tried again soon.
"""

_MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The knobs of calls to one service.

    Attributes:
        timeout: seconds a call may take in all (attempts, backoff sleeps),
            unless the request being served has less left.
        attempt_timeout: seconds one attempt may take (``None``: whatever
            is left of the call's budget).
        retries: retries after the first attempt, for calls that may be
            repeated (idempotent methods, or an ``Idempotency-Key``).
        backoff: the delay before each retry (full jitter).
        retry_budget: retries allowed per call made, over ten seconds
            (Finagle's budget; 0.2: at most one retry per five calls, plus
            a reserve of 10 a second).
        max_retry_after: a ``Retry-After`` asking for longer ends the retries.
        breaker: the breaker of the service and of each of its instances.
        hedge_delay: seconds after which a slow GET is sent a second time
            to another instance (``None``: no hedging).
        max_concurrent: calls in flight at most (a bulkhead; ``None``: no limit).
        max_queued: calls that may wait for a bulkhead slot.
        max_wait: seconds a call may wait for a slot (0: refuse at once).
        url: a fixed base URL (``https://payments.example``): no discovery.
        mesh: ``istio`` or ``linkerd``: call the DNS name, leave
            balancing and retries to the sidecar.
        mesh_namespace: namespace of the DNS name under a mesh.
        max_response_bytes: largest answer read.
        max_json_bytes: largest JSON answer parsed by the JSON helpers.
        max_json_depth: deepest JSON answer parsed.
        max_problem_bytes: largest problem body read from an error answer.

    Raises:
        ValueError: a knob out of range.
    """

    timeout: float = 10.0
    attempt_timeout: float | None = None
    retries: int = 2
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.05, maximum=2.0))
    retry_budget: float = 0.2
    max_retry_after: float = 10.0
    breaker: BreakerConfig = DEFAULT_BREAKER
    hedge_delay: float | None = None
    max_concurrent: int | None = None
    max_queued: int = 0
    max_wait: float = 0.0
    url: str | None = None
    mesh: Mesh = "none"
    mesh_namespace: str | None = None
    max_response_bytes: int = 8 * _MIB
    max_json_bytes: int = _MIB
    max_json_depth: int = 32
    max_problem_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for knob in ("timeout", "attempt_timeout", "hedge_delay"):
            value = getattr(self, knob)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{knob} must be a positive number of seconds, got {value}")
        for knob in ("max_retry_after", "max_wait", "retry_budget"):
            value = getattr(self, knob)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{knob} must be >= 0, got {value}")
        if isinstance(self.retries, bool) or not 0 <= self.retries <= 10:
            raise ValueError(f"retries must be 0 to 10, got {self.retries}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {self.max_concurrent}")
        if self.max_queued < 0:
            raise ValueError(f"max_queued must be >= 0, got {self.max_queued}")
        if self.mesh not in ("none", "istio", "linkerd"):
            raise ValueError(f"mesh must be none, istio or linkerd, got {self.mesh!r}")
        for knob in ("max_response_bytes", "max_json_bytes", "max_problem_bytes"):
            if getattr(self, knob) < 1:
                raise ValueError(f"{knob} must be >= 1 byte")
        if not 1 <= self.max_json_depth <= 1000:
            raise ValueError(f"max_json_depth must be 1 to 1000, got {self.max_json_depth}")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http:// or https:// URL, got {self.url!r}")

    @property
    def meshed(self) -> bool:
        """Whether a sidecar balances and retries (the client then does neither)."""
        return self.mesh != "none"

    @property
    def attempts(self) -> int:
        """Attempts per call: one under a mesh, else one plus the retries."""
        return 1 if self.meshed else 1 + self.retries

    def base_url(self, service: str) -> str | None:
        """The fixed base URL of ``service`` (``url``, or its DNS name under a mesh), if any."""
        if self.url is not None:
            return self.url.rstrip("/")
        if self.meshed:
            if self.mesh_namespace:
                return f"http://{service}.{self.mesh_namespace}.svc.cluster.local"
            return f"http://{service}"
        return None

    def with_options(self, **options: Any) -> ClientConfig:
        """A copy with ``options`` (``None`` values leave a knob as it is).

        Raises:
            TypeError: an option that is no knob.
        """
        known = {f.name for f in fields(self)}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"unknown client option(s): {', '.join(sorted(unknown))}")
        changes = {k: v for k, v in options.items() if v is not None}
        return replace(self, **changes) if changes else self

    @classmethod
    def from_settings(cls, settings: Settings, service: str) -> ClientConfig:
        """The ``LMS_CLIENT_*`` settings for calls to ``service``.

        Raises:
            SettingsError: an override in ``LMS_CLIENT_TARGETS`` is invalid.
        """
        config = cls(
            timeout=settings.client_timeout,
            retries=settings.client_retries,
            mesh=settings.client_mesh,
            mesh_namespace=settings.client_mesh_namespace,
        )
        target = settings.client_targets.get(service)
        if target is None:
            return config
        options = target.model_dump(exclude={"breaker"})
        try:
            if target.breaker is not None:
                knobs = target.breaker.model_dump(exclude_none=True)
                options["breaker"] = replace(config.breaker, **knobs)
            return config.with_options(**options)
        except ValueError as exc:
            raise SettingsError([(f"LMS_CLIENT_TARGETS ({service})", str(exc))]) from None
