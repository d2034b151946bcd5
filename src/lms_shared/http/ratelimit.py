"""Rate limiting as pure ASGI middleware, with per-route overrides.

Every HTTP request is counted against one policy: the route's own (set
with the :func:`limit` decorator, or lifted with :func:`exempt`) or the
service default (``LMS_RATELIMIT_DEFAULT``). A refused request gets a
429 problem (the IANA ``quota-exceeded`` type, ``violated-policies``,
``Retry-After``) before the app (or its body) is touched.

Every response of a limited request, whatever its status (200, 401, 422,
429...), carries ``RateLimit-Policy`` and ``RateLimit`` with one item per
policy the request met: this middleware's, the ``rate_limited`` and
``rate_check`` dependencies', and checks made in code with
``service.rate_limits`` (they record into the request's
:class:`~lms_shared.ratelimit.Standing`)::

    @service.router.post("/v1/login")
    @limit("5/minute", name="login")
    async def login(body: Credentials) -> Token: ...

The table of overridden routes is built once, when the lifespan starts
(or on the first request without a lifespan); a request then costs one
key lookup, one storage step and one wrapped ``send``. Health probes are
never limited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from starlette.routing import Match

from lms_shared import errors
from lms_shared.http.client_keys import KeyFunc, key_chain
from lms_shared.http.guards import answer_unread
from lms_shared.http.problems import PROBLEM_CONTENT_TYPE, ProblemRenderer
from lms_shared.http.routes import flatten_routes
from lms_shared.ratelimit import RateLimiter, RateLimitUnavailable, Standing
from lms_shared.ratelimit._policy import Decision, Quota, Rate
from lms_shared.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RateLimitMiddleware", "RouteLimit", "exempt", "limit"]

F = TypeVar("F", bound=Callable[..., Any])
REMEMBERED_PATHS = 1024
"""Requests' (path, root path, method) whose limit :meth:`RateLimitMiddleware.rule_for` keeps."""
_UNSEEN = object()
ATTRIBUTE = "__lms_rate_limit__"


@dataclass(frozen=True, slots=True)
class RouteLimit:
    """A route's own rate limit (``policy`` ``None`` means exempt).

    Attributes:
        policy: the route's policy, or ``None`` for no limit.
        key: the route's key function, or ``None`` for the service's.
        cost: requests one call counts for.
    """

    policy: Quota | None
    key: KeyFunc | None = None
    cost: int = 1


def limit(
    rate: str | Rate | Quota,
    *,
    name: str | None = None,
    burst: int = 0,
    key: KeyFunc | None = None,
    cost: int = 1,
) -> Callable[[F], F]:
    """Give a route its own rate limit instead of the default.

    Args:
        rate: ``"5/minute"``, a :class:`Rate` or a :class:`Quota`.
        name: the policy name in headers and storage (the function's name
            by default).
        burst: requests admitted at once (the rate's limit by default).
        key: who is counted (the service's key chain by default).
        cost: requests one call counts for.

    Raises:
        ValueError: the rate does not parse, or cost exceeds the burst.
    """

    def decorate(func: F) -> F:
        policy = Quota.of(rate, name=name or func.__name__.replace("_", "-"), burst=burst)
        if not 1 <= cost <= policy.burst:
            raise ValueError(f"cost must be between 1 and the burst ({policy.burst})")
        setattr(func, ATTRIBUTE, RouteLimit(policy, key, cost))
        return func

    return decorate


def exempt(func: F) -> F:
    """Exclude a route from the default rate limit."""
    setattr(func, ATTRIBUTE, RouteLimit(None))
    return func


class RateLimitMiddleware:
    """Counts requests, answers 429 problems, adds the ``RateLimit`` headers.

    Args:
        app: the wrapped ASGI app.
        limiter: the service's :class:`RateLimiter`.
        renderer: renders the 429 problem.
        default: policy of routes without their own (``None``: unlimited).
        key: who a request counts against; principal, then client address.
        exempt_prefixes: paths never limited (health probes).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        renderer: ProblemRenderer,
        default: str | Rate | Quota | None = None,
        key: KeyFunc | None = None,
        exempt_prefixes: Iterable[str] = ("/health/",),
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.renderer = renderer
        self.default = RouteLimit(Quota.of(default)) if default is not None else None
        self.key = key or key_chain(["principal", "ip"])
        self.exempt_prefixes = tuple(exempt_prefixes)
        self._routes: list[tuple[Any, RouteLimit]] | None = None
        self._rules: dict[tuple[str, str, str], object] = {}

    def bind(self, routes: Iterable[Any]) -> None:
        """Collect the routes that carry their own limit (done at start-up)."""
        table = []
        for route in flatten_routes(routes):
            rule = getattr(getattr(route, "endpoint", None), ATTRIBUTE, None)
            if isinstance(rule, RouteLimit):
                table.append((route, rule))
        self._routes = table
        self._rules.clear()

    def rule_for(self, scope: Scope) -> RouteLimit | None:
        """The limit that applies to a request (``None``: not limited).

        The answer is remembered per path, root path and method (at most
        :data:`REMEMBERED_PATHS`, then forgotten all at once): a route's
        ``matches`` reads nothing else before routing began, and costs
        FastAPI about 4 µs a call. Once routing began (FastAPI's own scope
        key is set) every call matches afresh.
        """
        routes = self._routes
        if routes is None:
            self.bind(getattr(scope.get("app"), "routes", ()))
            routes = self._routes or []
        path = scope["path"]
        if path.startswith(self.exempt_prefixes):
            return None
        key = None if "fastapi" in scope else (path, scope.get("root_path", ""), scope["method"])
        if key is not None:
            found = self._rules.get(key, _UNSEEN)
            if found is not _UNSEEN:
                return cast("RouteLimit | None", found)
        rule = self.default
        for route, own in routes:
            if route.matches(scope)[0] is Match.FULL:
                rule = own if own.policy is not None else None
                break
        if key is not None:
            if len(self._rules) >= REMEMBERED_PATHS:
                self._rules.clear()
            self._rules[key] = rule
        return rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._on_startup(scope, receive), send)
            return
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        rule = self.rule_for(scope)
        with Standing() as standing:
            if rule is not None and rule.policy is not None:
                key = (rule.key and rule.key(scope)) or self.key(scope) or "ip:unknown"
                decision = self.limiter.hit_local(key, rule.policy, rule.cost)
                if decision is None:
                    try:
                        decision = await self.limiter.hit(key, rule.policy, rule.cost)
                    except RateLimitUnavailable as exc:
                        await self._unavailable(scope, receive, send, exc)
                        return
                if not decision.allowed:
                    await self._refuse(scope, receive, send, decision, standing)
                    return

            async def send_wrapper(message: Message) -> None:
                # the fields of every policy the request met, on any status
                if message["type"] == "http.response.start" and standing:
                    message["headers"] = [*message.get("headers", ()), *standing.fields()]
                await send(message)

            await self.app(scope, receive, send_wrapper)

    def _on_startup(self, scope: Scope, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.bind(getattr(scope.get("app"), "routes", ()))
            return message

        return wrapped

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, decision: Decision, standing: Standing
    ) -> None:
        body = self.renderer.body(
            errors.RATE_LIMITED,
            detail=(
                f"rate limit {decision.policy.name!r} exceeded; retry in {decision.retry_after} s"
            ),
            instance=scope.get("path"),
            extensions={"violated-policies": standing.violated},
        )
        headers = [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            *standing.fields(),
            (b"retry-after", str(decision.retry_after).encode()),
        ]
        # answered before the body is read: drained, so the client sees the 429, not a reset
        await answer_unread(scope, receive, send, 429, headers, body)

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, exc: RateLimitUnavailable
    ) -> None:
        extra = [(k.encode(), v.encode()) for k, v in exc.headers.items()]
        status, headers, body = self.renderer.raw(
            exc.problem_code, detail=exc.detail, instance=scope.get("path"), headers=extra
        )
        await answer_unread(scope, receive, send, status, headers, body)
