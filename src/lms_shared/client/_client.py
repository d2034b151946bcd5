"""``service.client("identity")``: one :class:`ServiceClient` per called service.

A call goes, from the outside in::

    deadline check -> service breaker -> retry (gate, budget, Retry-After)
        -> hedge (GETs, when configured) -> bulkhead -> pick an instance
        (discovery + balancer, skipping instances already tried and those
        whose breaker is open) -> instance breaker -> attempt timeout -> httpx

* **Deadline.** The call's budget is the smaller of its ``timeout`` and
  what the request being served has left (:mod:`lms_shared.http.deadline`);
  each attempt sends what is left in ``x-lms-timeout-ms``. No time left:
  :class:`~lms_shared.resilience.DeadlineExceeded` (504) without a call.
* **Retries** only for calls that may be repeated: idempotent methods
  (``GET``, ``HEAD``, ``PUT``, ``DELETE``, ...) or an ``Idempotency-Key``,
  and only when no hop further up retries the request (the retry-hop
  mark, which the client sets on what it may retry and passes on). Retried
  on: no answer (refused, reset), an attempt timeout, 502/503/504, 429 (after
  its ``Retry-After``), an instance whose breaker rejects; each retry goes
  to another instance while there is one. A budget shared by the calls to
  the service caps retries at 20 % of them.
* **Breakers.** One per service records whole calls (after retries): when
  the service keeps failing, calls fail at once with a 503
  ``circuit-open``. One per instance records attempts: a failing instance
  is skipped while its breaker is open, and the balancer's outlier
  ejection hears of every attempt too. 4xx answers are successes (the
  callee answered).
* **Answers.** A 4xx/5xx answer raises the typed error of its status
  (:mod:`lms_shared.client._errors`), its problem body read bounded.
  Bodies are read at most ``max_response_bytes`` (decoded), JSON parsed
  at most ``max_json_bytes`` and ``max_json_depth`` deep.
* **Headers.** ``x-request-id`` of the request being served, its tenant
  (``x-lms-tenant``: the caller's principal's, or the header it came with),
  the retry-hop mark, the deadline, ``user-agent: <service>/<version>``,
  the service token for the callee (``service.auth.outgoing(name)``) and
  whatever the ``propagators`` add (trace context, when observability fills
  the hook).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

import httpx
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_json

from lms_shared.client._config import ClientConfig
from lms_shared.client._errors import (
    InvalidResponse,
    ServiceCallError,
    ServiceUnreachable,
    UpstreamUnavailable,
    error_for,
    read_problem,
)
from lms_shared.discovery import Call, Instance, NoInstances
from lms_shared.errors import ProblemError
from lms_shared.http.deadline import TENANT_HEADER, TIMEOUT_HEADER, InboundCall, inbound_call
from lms_shared.http.idempotency import IDEMPOTENCY_HEADER
from lms_shared.http.request import REQUEST_ID_HEADER
from lms_shared.jsonlimits import JsonLimitError, load_json
from lms_shared.observability import current_request_id, inject_trace_context, span
from lms_shared.resilience import (
    RETRY_HOP_HEADER,
    AttemptTimeout,
    BreakerState,
    Bulkhead,
    CircuitBreaker,
    CircuitOpen,
    Deadline,
    DeadlineExceeded,
    Hedge,
    Retry,
    RetryBudget,
    call_with_timeout,
    is_idempotent_method,
    may_retry,
    parse_retry_after,
    retry_hop_value,
)

if TYPE_CHECKING:
    from lms_shared.client._clients import Clients

__all__ = ["Propagator", "ServiceClient"]

M = TypeVar("M")

Propagator = Callable[[dict[str, str]], None]
"""Adds headers to every attempt (``traceparent``...): ``propagator(headers)``."""

JsonBody = BaseModel | Mapping[str, Any] | Sequence[Any] | None

_IDEMPOTENCY = IDEMPOTENCY_HEADER.lower()
_ACCEPT = "application/json, application/problem+json"
_JSON = "application/json"
_DEADLINE = DeadlineExceeded.code.slug


def _retryable(exc: BaseException) -> bool:
    """What a retry may help with (the gate decides whether a retry is allowed at all)."""
    if isinstance(exc, ServiceCallError):
        return exc.retryable
    if isinstance(exc, AttemptTimeout):
        return True
    # an instance's breaker ("identity/10.0.0.7:8000") rejecting: another instance may answer
    return isinstance(exc, CircuitOpen) and "/" in exc.breaker


def _instance_failed(exc: BaseException) -> bool:
    """Whether an attempt's error says the instance is unwell (breaker, outlier ejection)."""
    if isinstance(exc, UpstreamUnavailable):
        status = exc.received_status
        return status is None or status >= 500
    return isinstance(exc, AttemptTimeout | DeadlineExceeded | InvalidResponse)


def _service_failed(exc: BaseException) -> bool:
    """Whether a call's error counts against the service's breaker."""
    return _instance_failed(exc) or isinstance(exc, CircuitOpen | NoInstances)


def _permits(breaker: CircuitBreaker | None) -> bool:
    if breaker is None:
        return True
    state = breaker.state
    if state is BreakerState.FORCED_OPEN:
        return False
    return not (state is BreakerState.OPEN and breaker.open_remaining > 0)


@functools.lru_cache(maxsize=256)
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


@dataclass(slots=True)
class _Outgoing:
    """One call, as its attempts need it."""

    method: str
    path: str
    params: Any
    content: bytes | None
    headers: dict[str, str]
    deadline: Deadline
    key: str | None
    tried: list[str]


class ServiceClient:
    """Calls to one service: discovery, balancing, retries, breakers, deadline, credentials.

    Made by ``service.client(name)`` (:class:`~lms_shared.client.Clients`),
    never directly; the connection pool opens on the first call and closes
    when the service stops.

    Attributes:
        service: the called service's name.
        config: how calls are made (:class:`ClientConfig`).
    """

    def __init__(self, service: str, config: ClientConfig, *, pool: Clients) -> None:
        self.service = service
        self.config = config
        self._pool = pool
        self.clock = clock = pool.clock
        self._base = config.base_url(service)
        self._ua = f"{pool.caller}/{pool.version}"
        self.retry: Retry | None = None
        if config.attempts > 1:
            self.retry = Retry(
                on=_retryable,
                clock=clock,
                attempts=config.attempts,
                backoff=config.backoff,
                budget=RetryBudget(clock=clock, ratio=config.retry_budget),
                max_retry_after=config.max_retry_after,
                name=service,
            )
        self.hedge: Hedge | None = None
        if config.hedge_delay is not None and not config.meshed:
            self.hedge = Hedge(delay=config.hedge_delay, clock=clock)
        self.bulkhead: Bulkhead | None = None
        if config.max_concurrent is not None:
            self.bulkhead = Bulkhead(
                service,
                clock=clock,
                max_concurrent_calls=config.max_concurrent,
                max_queued_calls=config.max_queued,
                max_wait_duration=config.max_wait,
            )
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        where = self._base or "discovery"
        return f"ServiceClient({self.service!r}, {where}, attempts={self.config.attempts})"

    # -- state -------------------------------------------------------------

    @property
    def breaker(self) -> CircuitBreaker:
        """The service's breaker (whole calls)."""
        return self._pool.breakers.get(self.service)

    def instance_breaker(self, instance_id: str) -> CircuitBreaker | None:
        """The breaker of one instance (by id), once a call went there."""
        return self._pool.breakers.find(self.service, instance_id)

    def _client(self) -> httpx.AsyncClient:
        http = self._http
        if http is None:
            pool = self._pool
            http = self._http = httpx.AsyncClient(
                auth=pool.credentials(self.service),
                transport=pool.transport_for(self.service),
                timeout=httpx.Timeout(self.config.timeout),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
                trust_env=False,  # inter-service calls never go through HTTP(S)_PROXY
                follow_redirects=False,
            )
        return http

    async def aclose(self) -> None:
        """Close the connection pool (the next call opens a new one)."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    # -- calls -------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        idempotency_key: str | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one call to the service and return its (read) answer, below 400.

        Args:
            method: the HTTP method.
            path: the path, from ``/`` (``/v1/users/42``).
            params: query parameters (as httpx takes them).
            content: the request body.
            headers: more headers (they win over the client's own).
            idempotent: whether the call may be repeated; by default
                whether the method is idempotent (RFC 9110 §9.2.2).
            idempotency_key: sent as ``Idempotency-Key``; makes a
                non-idempotent call retryable.
            key: affinity key: calls with the same key go to the same
                instance while the instances do not change.
            timeout: this call's budget (``config.timeout`` by default); the
                request being served may have less left.

        Raises:
            DeadlineExceeded: no time left (before or during the call).
            CircuitOpen: the service's breaker (or every instance's) is open.
            NoInstances: discovery knows no healthy instance.
            ServiceCallError: the callee answered 4xx/5xx (typed by status),
                did not answer (:class:`ServiceUnreachable`) or answered a
                body too large to read (:class:`InvalidResponse`).
            AttemptTimeout: the last attempt took longer than ``attempt_timeout``.
            ValueError: ``path`` does not start with ``/``.
        """
        if not path.startswith("/"):
            raise ValueError(f"a path starts with '/', got {path[:40]!r}")
        method = method.upper()
        inbound = inbound_call()
        deadline = self._deadline(timeout, inbound)
        if deadline.expired:
            raise DeadlineExceeded(deadline.seconds)
        if idempotent is None:
            idempotent = is_idempotent_method(method)
        has_key = idempotency_key is not None or (
            headers is not None and any(name.lower() == _IDEMPOTENCY for name in headers)
        )
        upstream = inbound is not None and inbound.upstream_retrying
        retry = self.retry
        allowed = retry is not None and may_retry(
            idempotent=idempotent, idempotency_key=has_key, upstream=upstream
        )
        out = self._headers(inbound, upstream, allowed)
        if idempotency_key is not None:
            out[_IDEMPOTENCY] = idempotency_key
        if headers:
            out.update(headers)
        call = _Outgoing(method, path, params, content, out, deadline, key, [])
        breaker = self._pool.breakers.get(self.service)
        started = breaker.acquire()
        try:
            response = await self._attempts(
                call, retry if allowed else None, idempotent and not upstream
            )
        except Exception as exc:
            if _service_failed(exc):
                breaker.on_error(exc, started)
            else:
                breaker.on_success(started)
            raise
        except BaseException:
            breaker.release(started)
            raise
        breaker.on_success(started)
        return response

    def _deadline(self, timeout: float | None, inbound: InboundCall | None) -> Deadline:
        budget = self.config.timeout if timeout is None else timeout
        if inbound is not None:
            left = inbound.remaining()
            if left is not None and left < budget:
                budget = left
        return Deadline(max(0.0, budget), clock=self.clock)

    def _headers(
        self, inbound: InboundCall | None, upstream: bool, retrying: bool
    ) -> dict[str, str]:
        out = {"user-agent": self._ua, "accept": _ACCEPT}
        request_id = current_request_id()
        if request_id is not None:
            out[REQUEST_ID_HEADER] = request_id
        if inbound is not None:
            tenant = inbound.principal_tenant or inbound.tenant
            if tenant is not None:
                out[TENANT_HEADER] = tenant
        hop = retry_hop_value(upstream=upstream, retrying=retrying)
        if hop is not None:
            out[RETRY_HOP_HEADER] = hop
        return out

    async def _attempts(
        self, call: _Outgoing, retry: Retry | None, hedgeable: bool
    ) -> httpx.Response:
        if retry is not None and retry.budget is not None:
            retry.budget.record_request()
        hedge = self.hedge if hedgeable and call.method in ("GET", "HEAD") else None
        attempt = 1
        while True:
            try:
                if hedge is not None:
                    return await hedge.call(lambda: self._attempt(call), idempotent=True)
                return await self._attempt(call)
            except Exception as exc:
                if retry is None:
                    raise
                delay = retry.next_delay(exc, attempt, call.deadline)
                if delay is None:
                    raise
            attempt += 1
            await self.clock.sleep(delay)

    async def _attempt(self, call: _Outgoing) -> httpx.Response:
        left = call.deadline.remaining()
        if left <= 0:
            raise DeadlineExceeded(call.deadline.seconds)
        limit: float = left
        timeout_error: Callable[[float], BaseException] = DeadlineExceeded
        per_attempt = self.config.attempt_timeout
        if per_attempt is not None and per_attempt < left:
            limit, timeout_error = per_attempt, AttemptTimeout
        bulkhead = self.bulkhead
        if bulkhead is not None:
            await bulkhead.acquire()
        try:
            base, instance, feedback = await self._pick(call)
            if instance is None:
                return await self._send(call, base, limit, timeout_error)
            breaker = self._pool.breakers.get(self.service, instance.id)
            started = breaker.acquire()  # CircuitOpen: retried on another instance
            try:
                response = await self._send(call, base, limit, timeout_error)
            except Exception as exc:
                failed = _instance_failed(exc)
                if failed:
                    breaker.on_error(exc, started)
                else:
                    breaker.on_success(started)
                if feedback is not None:
                    feedback.end(ok=not failed)
                raise
            except BaseException:
                breaker.release(started)
                if feedback is not None:
                    feedback.end(ok=True)  # cancelled (a hedge lost): no verdict on the instance
                raise
            breaker.on_success(started)
            if feedback is not None:
                feedback.end(ok=True)
            return response
        finally:
            if bulkhead is not None:
                bulkhead.release()

    async def _pick(self, call: _Outgoing) -> tuple[str, Instance | None, Call | None]:
        if self._base is not None:
            return self._base, None, None
        discovery = await self._pool.discovery()
        instances = await discovery.instances(self.service)
        if not instances:
            raise NoInstances(self.service)
        breakers = self._pool.breakers
        usable = [i for i in instances if _permits(breakers.find(self.service, i.id))]
        if not usable:
            wait = min(
                (b.open_remaining for i in instances if (b := breakers.find(self.service, i.id))),
                default=0.0,
            )
            raise CircuitOpen(f"{self.service}/*", BreakerState.OPEN.value, wait or None)
        fresh = [i for i in usable if i.key not in call.tried]
        balancer = discovery.balancer(self.service)
        instance = balancer.pick(fresh or usable, key=call.key)
        call.tried.append(instance.key)
        return instance.base_url(), instance, Call(instance, balancer, self.clock)

    async def _send(
        self,
        call: _Outgoing,
        base: str,
        limit: float,
        timeout_error: Callable[[float], BaseException],
    ) -> httpx.Response:
        # one CLIENT span an attempt: each attempt hands on its own parent id
        with span(
            f"{call.method}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": call.method,
                "peer.service": self.service,
                "url.path": call.path,
            },
        ) as attempt:
            try:
                response = await self._send_in_span(call, base, limit, timeout_error)
            except ProblemError as exc:
                attempt.set_attribute("http.response.status_code", exc.status)
                attempt.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            attempt.set_attribute("http.response.status_code", response.status_code)
            return response

    async def _send_in_span(
        self,
        call: _Outgoing,
        base: str,
        limit: float,
        timeout_error: Callable[[float], BaseException],
    ) -> httpx.Response:
        headers = dict(call.headers)
        headers[TIMEOUT_HEADER] = str(max(1, int(limit * 1000)))
        inject_trace_context(headers)
        for propagate in self._pool.propagators:
            propagate(headers)
        http = self._client()
        request = http.build_request(
            call.method, base + call.path, params=call.params, content=call.content, headers=headers
        )
        try:
            response, body = await call_with_timeout(
                lambda: self._exchange(http, request),
                limit,
                clock=self.clock,
                exception=timeout_error,
            )
        except httpx.TimeoutException:
            raise AttemptTimeout(limit) from None
        except httpx.TransportError as exc:
            raise ServiceUnreachable(
                self.service,
                f"the {self.service} service is unreachable",
                headers={"Retry-After": "1"},
            ) from exc
        status = response.status_code
        if status < 400:
            return response
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=self.clock.now())
        problem = read_problem(body, max_bytes=self.config.max_problem_bytes)
        if status == 504 and problem.get("code") == _DEADLINE:
            # the budget we handed on ran out down the chain: ours has too
            raise DeadlineExceeded(call.deadline.seconds)
        raise error_for(self.service, status, problem, retry_after=retry_after)

    async def _exchange(
        self, http: httpx.AsyncClient, request: httpx.Request
    ) -> tuple[httpx.Response, bytes]:
        response = await http.send(request, stream=True)
        try:
            error = response.status_code >= 400
            limit = self.config.max_problem_bytes if error else self.config.max_response_bytes
            length = response.headers.get("content-length")
            if (
                length is not None
                and length.isdigit()
                and int(length) <= limit
                and "content-encoding" not in response.headers
            ):
                return response, await response.aread()
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    if error:
                        return response, b""  # unreadable problem: the status alone speaks
                    raise InvalidResponse(
                        self.service,
                        f"the {self.service} service answered more than {limit} bytes",
                        received_status=response.status_code,
                    )
                chunks.append(chunk)
            body = b"".join(chunks)
            headers = [
                (k, v)
                for k, v in response.headers.raw
                if k.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
            ]
            read = httpx.Response(
                response.status_code, headers=headers, content=body, request=request
            )
            return read, body
        finally:
            await response.aclose()

    # -- JSON helpers ------------------------------------------------------

    @overload
    async def get_json(
        self,
        path: str,
        *,
        model: type[M],
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> M: ...

    @overload
    async def get_json(
        self,
        path: str,
        *,
        model: None = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> Any: ...

    async def get_json(
        self,
        path: str,
        *,
        model: Any = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """GET ``path`` and return its JSON, validated as ``model`` when given.

        Raises:
            InvalidResponse: the answer is not JSON, too large or too deep,
                or not a valid ``model``.
            ServiceCallError: see :meth:`request`.
        """
        response = await self.request(
            "GET", path, params=params, headers=headers, key=key, timeout=timeout
        )
        return self._decode(response, model)

    async def post_json(
        self,
        path: str,
        body: JsonBody = None,
        *,
        model: Any = None,
        idempotency_key: str | None = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """POST ``body`` (a model, or JSON-ready data) as JSON; return the JSON answer.

        Not retried unless ``idempotency_key`` is given (the callee then
        answers a repeat with the first answer).

        Raises:
            InvalidResponse: the answer is not JSON or not a valid ``model``.
            ServiceCallError: see :meth:`request`.
        """
        return await self._send_json(
            "POST", path, body, model, idempotency_key, params, headers, key, timeout
        )

    async def put_json(
        self,
        path: str,
        body: JsonBody = None,
        *,
        model: Any = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """PUT ``body`` as JSON (idempotent: retried); return the JSON answer."""
        return await self._send_json("PUT", path, body, model, None, params, headers, key, timeout)

    async def patch_json(
        self,
        path: str,
        body: JsonBody = None,
        *,
        model: Any = None,
        idempotency_key: str | None = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """PATCH ``body`` as JSON (retried only with ``idempotency_key``); return the answer."""
        return await self._send_json(
            "PATCH", path, body, model, idempotency_key, params, headers, key, timeout
        )

    async def delete(
        self,
        path: str,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """DELETE ``path`` (idempotent: retried)."""
        return await self.request(
            "DELETE", path, params=params, headers=headers, key=key, timeout=timeout
        )

    async def ping(self, *, timeout: float = 2.0) -> str:
        """Readiness check: one instance answers ``/health/live`` (sent once, no retry).

        Raises:
            ServiceCallError: it does not.
        """
        await self.request("GET", "/health/live", timeout=timeout, idempotent=False)
        return f"{self.service} is live"

    async def _send_json(
        self,
        method: str,
        path: str,
        body: JsonBody,
        model: Any,
        idempotency_key: str | None,
        params: Any,
        headers: Mapping[str, str] | None,
        key: str | None,
        timeout: float | None,
    ) -> Any:
        content = None if body is None else to_json(body)
        sent = {"content-type": _JSON} if content is not None else {}
        if headers:
            sent.update(headers)
        response = await self.request(
            method,
            path,
            params=params,
            content=content,
            headers=sent,
            idempotency_key=idempotency_key,
            key=key,
            timeout=timeout,
        )
        return self._decode(response, model)

    def _decode(self, response: httpx.Response, model: Any) -> Any:
        raw = response.content
        if not raw:
            if model is None:
                return None
            raise self._invalid(response, "an empty body")
        try:
            document = load_json(
                raw, max_bytes=self.config.max_json_bytes, max_depth=self.config.max_json_depth
            )
        except JsonLimitError as exc:
            raise self._invalid(response, f"a body that is not acceptable JSON ({exc})") from None
        if model is None:
            return document
        try:
            if isinstance(model, type) and issubclass(model, BaseModel):
                return model.model_validate(document)
            return _adapter(model).validate_python(document)
        except ValidationError as exc:
            name = getattr(model, "__name__", str(model))
            count = exc.error_count()
            fields = f"{count} invalid field{'s' if count != 1 else ''}"
            raise self._invalid(response, f"a body that is not a valid {name} ({fields})") from None

    def _invalid(self, response: httpx.Response, what: str) -> InvalidResponse:
        return InvalidResponse(
            self.service,
            f"the {self.service} service answered {what}",
            received_status=response.status_code,
        )
