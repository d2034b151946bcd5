"""Deadlines across hops: the caller's remaining budget travels with each request.

A caller that will wait 1.8 more seconds says so in ``x-lms-timeout-ms:
1800``: a *relative* budget in milliseconds, like gRPC's ``grpc-timeout``
and Envoy's ``x-envoy-expected-rq-timeout-ms``, so no two clocks have to
agree. :class:`DeadlineMiddleware` (installed by ``create_service``):

* answers a budget of ``0`` at once with a 504 ``deadline-exceeded``
  problem, without running the handler (the caller has given up);
* bounds the request by ``min(budget, LMS_REQUEST_TIMEOUT)``; when the
  header is the stricter of the two, a handler still running at the end
  of it is cancelled and answered 504 ``deadline-exceeded``
  (:class:`~lms_shared.http.guards.TimeoutMiddleware` keeps enforcing
  ``LMS_REQUEST_TIMEOUT`` itself);
* publishes the request's :class:`InboundCall` for the task serving it:
  the deadline on the service clock, whether a caller further up retries
  (:data:`~lms_shared.resilience.RETRY_HOP_HEADER`) and the tenant
  (``x-lms-tenant``), so that the inter-service client
  (:mod:`lms_shared.client`) hands on the *rest* of the budget and the
  marks; a chain of calls never outlives its first caller.

A malformed header (not 1-9 digits) is ignored: the request then has the
service's own ``LMS_REQUEST_TIMEOUT``. Code outside a request (a job, a
consumer) narrows the budget of the calls it makes with
:func:`deadline_scope`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from lms_shared.auth import Principal
from lms_shared.clock import Clock
from lms_shared.http.guards import run_bounded
from lms_shared.http.problems import ProblemRenderer
from lms_shared.observability import get_logger
from lms_shared.resilience import RETRY_HOP_HEADER, DeadlineExceeded
from lms_shared.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "TENANT_HEADER",
    "TIMEOUT_HEADER",
    "DeadlineMiddleware",
    "InboundCall",
    "deadline_scope",
    "inbound_call",
    "parse_timeout_ms",
    "valid_tenant",
]

TIMEOUT_HEADER = "x-lms-timeout-ms"
"""The caller's remaining budget in whole milliseconds (``0``: already spent)."""

TENANT_HEADER = "x-lms-tenant"
"""The tenant a call is made for: context for logs and scoping, never a credential."""

_TIMEOUT = TIMEOUT_HEADER.encode()
_TENANT = TENANT_HEADER.encode()
_HOP = RETRY_HOP_HEADER.encode()
_VALID_TENANT = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_MAX_DIGITS = 9  # 999,999,999 ms: about 11.5 days, more than any request timeout


@dataclass(frozen=True, slots=True)
class InboundCall:
    """What the request being served says about the calls it makes.

    Attributes:
        expires_at: ``clock.monotonic()`` at which the caller stops
            waiting; ``None`` for no deadline.
        clock: the clock ``expires_at`` is on (the service clock).
        upstream_retrying: the request carried the retry-hop mark (a hop
            further up retries it): do not retry the calls made for it.
        tenant: the tenant the caller named in ``x-lms-tenant``, if well-formed.
        state: the request's ASGI ``state`` (``require`` leaves the
            principal there), ``None`` outside a request.
    """

    expires_at: float | None
    clock: Clock
    upstream_retrying: bool = False
    tenant: str | None = None
    state: MutableMapping[str, Any] | None = None

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` without a deadline."""
        if self.expires_at is None:
            return None
        return max(0.0, self.expires_at - self.clock.monotonic())

    @property
    def principal_tenant(self) -> str | None:
        """The tenant of the authenticated caller of the request, once ``require`` ran."""
        principal = None if self.state is None else self.state.get("principal")
        return principal.tenant if isinstance(principal, Principal) else None


_inbound: ContextVar[InboundCall | None] = ContextVar("lms_inbound_call", default=None)


def inbound_call() -> InboundCall | None:
    """The :class:`InboundCall` of the request (or :func:`deadline_scope`) this task serves."""
    return _inbound.get()


@contextmanager
def deadline_scope(seconds: float, *, clock: Clock) -> Iterator[InboundCall]:
    """Give the calls made inside the block at most ``seconds`` (narrowing any outer budget).

    For code outside a request: a job, an event consumer, a test.

    Raises:
        ValueError: ``seconds`` is negative.
    """
    if not seconds >= 0:
        raise ValueError(f"a deadline needs seconds >= 0, got {seconds}")
    expires = clock.monotonic() + seconds
    outer = _inbound.get()
    if outer is None:
        scope = InboundCall(expires, clock)
    else:
        left = outer.remaining()
        if left is not None:
            expires = min(expires, clock.monotonic() + left)
        scope = replace(outer, expires_at=expires, clock=clock)
    token = _inbound.set(scope)
    try:
        yield scope
    finally:
        _inbound.reset(token)


def parse_timeout_ms(value: bytes | str) -> int | None:
    """The milliseconds of an ``x-lms-timeout-ms`` value, ``None`` when malformed (1-9 digits)."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not 0 < len(text) <= _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def valid_tenant(value: str) -> bool:
    """Whether a tenant id is safe to pass on: 1-128 of ``A-Z a-z 0-9 . _ : -``."""
    return _VALID_TENANT.fullmatch(value) is not None


class DeadlineMiddleware:
    """Enforce the caller's ``x-lms-timeout-ms`` and publish the :class:`InboundCall`.

    Args:
        app: the wrapped ASGI app.
        renderer: renders the 504 problem.
        clock: the service clock (the deadline's time base).
        max_timeout: the service's own bound (``LMS_REQUEST_TIMEOUT``);
            a larger budget in the header is cut to it.
    """

    def __init__(
        self, app: ASGIApp, *, renderer: ProblemRenderer, clock: Clock, max_timeout: float
    ) -> None:
        if not max_timeout > 0:
            raise ValueError(f"max_timeout must be positive, got {max_timeout}")
        self.app = app
        self.renderer = renderer
        self.clock = clock
        self.max_timeout = max_timeout
        self.log = get_logger("lms.deadline")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = tenant = None
        hop = False
        for name, value in scope["headers"]:
            if name == _TIMEOUT:
                raw = value
            elif name == _HOP:
                hop = True
            elif name == _TENANT:
                tenant = value.decode("latin-1")
        budget = self.max_timeout
        strict = False
        if raw is not None:
            ms = parse_timeout_ms(raw)
            if ms == 0:
                await self._expired(scope, send, "the caller's deadline had passed on arrival")
                return
            if ms is not None and ms / 1000 < budget:
                budget, strict = ms / 1000, True
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        call = InboundCall(
            self.clock.monotonic() + budget,
            self.clock,
            hop,
            tenant if tenant is not None and valid_tenant(tenant) else None,
            state,
        )
        token = _inbound.set(call)
        try:
            if strict:
                await self._bounded(scope, receive, send, budget)
            else:
                await self.app(scope, receive, send)
        finally:
            _inbound.reset(token)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, budget: float) -> None:
        async def expired(scope: Scope, send: Send) -> None:
            self.log.warning("request deadline passed", budget_ms=round(budget * 1000))
            detail = f"the caller's deadline of {budget * 1000:.0f} ms passed"
            await self._expired(scope, send, detail)

        await run_bounded(self.app, scope, receive, send, budget, expired)

    async def _expired(self, scope: Scope, send: Send, detail: str) -> None:
        status, headers, body = self.renderer.raw(
            DeadlineExceeded.code, detail=detail, instance=scope.get("path")
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
