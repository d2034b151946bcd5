"""Rate limits as a FastAPI dependency, for limits keyed by the verified caller.

The middleware runs before routing and authentication, so it can only
count what the request shows (address, API-key header). A limit per
authenticated principal belongs in the route, which :func:`rate_limited`
is: as a parameter default or in ``dependencies=[...]``, before or after
``require(...)``, it counts the caller's principal (it authenticates the
request's credentials itself, once: ``require`` reuses the result) and
the client address for anonymous calls::

    @router.post("/v1/courses/{course_id}/grades", dependencies=[rate_limited("30/minute")])
    async def grade(course_id: UUID, who: Principal = require("grade:write")) -> Grade: ...

    @router.post("/v1/threads")
    async def post(
        who: Principal = require("thread:write"),
        _: Decision = rate_limited("5/minute", name="posting"),
    ) -> Thread: ...

``rate_limited(...)`` already is a dependency: ``Depends(rate_limited(...))``
fails when the route is declared, with an error naming the right use.

A refused call raises :class:`RateLimited` (a 429 ``quota-exceeded``
problem with ``Retry-After``). Whatever the response (200, 401, 422,
429), the rate-limit middleware writes the ``RateLimit`` fields of every
policy the request met, these included.

:func:`rate_check` is for limits keyed by what only the handler knows
(the account a login names): it advertises its policy on every response
of the route, the 422 of a body that did not validate too, and the
handler checks with the key::

    ACCOUNT = rate_check("5/minute", name="login-account")

    @v1.post("/login")
    async def login(body: Login, accounts: RateCheck = ACCOUNT) -> Token:
        await accounts.check(f"account:{body.email.lower()}")
"""

from __future__ import annotations

from typing import Any, NoReturn

from fastapi import Depends, Request, Response
from fastapi.params import Depends as DependsParam

from lms_shared.auth._authenticator import Authenticator
from lms_shared.errors import ProblemError
from lms_shared.http.auth import SCOPE_KEY, STATE_KEY
from lms_shared.http.client_keys import KeyFunc, key_chain
from lms_shared.ratelimit._limiter import RateLimiter
from lms_shared.ratelimit._policy import Decision, Quota, Rate
from lms_shared.ratelimit._standing import current_standing
from lms_shared.types import Scope

__all__ = ["POLICY_ATTRIBUTE", "RateCheck", "RateLimitedDepends", "rate_check", "rate_limited"]

POLICY_ATTRIBUTE = "__lms_rate_policy__"
"""Set on the dependency callables: the policy they enforce (OpenAPI reads it)."""


def _limiter_of(request: Request) -> RateLimiter:
    service = getattr(request.app.state, "service", None)
    limiter = getattr(service, "rate_limits", None)
    if not isinstance(limiter, RateLimiter):
        raise RuntimeError("no rate limiter: build the app with create_service")
    return limiter


_MISUSE = (
    "rate_limited(...) is already a dependency: write `_: Decision = rate_limited(...)` "
    "or `dependencies=[rate_limited(...)]`, not Depends(rate_limited(...))"
)


class RateLimitedDepends(DependsParam):
    """What :func:`rate_limited` returns: a ``Depends`` that refuses to be wrapped again.

    ``Depends(rate_limited(...))`` would make FastAPI treat this object as
    the dependency callable; inspecting it raises a ``TypeError`` naming
    the right use, when the route is declared rather than per request.
    """

    @property
    def __signature__(self) -> NoReturn:
        raise TypeError(_MISUSE)

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        """Never a callable: see the class docstring."""
        raise TypeError(_MISUSE)


async def _resolve_principal(scope: Scope, app: Any) -> None:
    """Authenticate the request's credentials once, for keying (``require`` reuses it).

    A request without credentials, or with credentials that do not verify,
    is left anonymous: it is counted by address, and ``require`` answers it
    with its 401.
    """
    if scope.get(SCOPE_KEY) is not None:
        return
    state = scope.setdefault("state", {})
    if state.get("principal") is not None:
        return
    headers = scope["headers"]
    if not any(name in (b"authorization", b"x-api-key") for name, _ in headers):
        return
    authenticator = getattr(app.state, STATE_KEY, None)
    if not isinstance(authenticator, Authenticator):
        return
    try:
        principal = authenticator.cached(headers) or await authenticator.authenticate(headers)
    except ProblemError:  # invalid or unverifiable: anonymous here, refused by require
        return
    scope[SCOPE_KEY] = principal
    state["principal"] = principal


def _policy(rate: str | Rate | Quota, name: str | None, burst: int, cost: int) -> Quota:
    if name is None and not isinstance(rate, Quota):
        parsed = rate if isinstance(rate, Rate) else Rate.parse(rate)
        # never "default": that is the middleware's policy, with its own rate and storage keys
        name = f"{parsed.limit}-per-{parsed.period}s"
        rate = parsed
    policy = Quota.of(rate, name=name or "", burst=burst)
    if not 1 <= cost <= policy.burst:
        raise ValueError(f"cost must be between 1 and the burst ({policy.burst})")
    return policy


def rate_limited(
    rate: str | Rate | Quota,
    *,
    name: str | None = None,
    burst: int = 0,
    key: KeyFunc | None = None,
    cost: int = 1,
) -> Any:
    """A dependency counting each call against ``rate``.

    Args:
        rate: ``"30/minute"``, a :class:`Rate` or a :class:`Quota`.
        name: the policy name (headers and storage keys); by default
            the rate's, ``30-per-60s``.
        burst: calls admitted at once (the rate's limit by default).
        key: who is counted; by default the caller's principal (the
            request's credentials are verified here when no ``require``
            ran before), else the client address.
        cost: calls one request counts for.

    Returns:
        A ``Depends`` (:class:`RateLimitedDepends`) resolving to the
        admitting :class:`Decision`: a parameter default, an ``Annotated``
        marker or an entry of ``dependencies=[...]``.

    Raises:
        ValueError: the rate does not parse, or cost exceeds the burst.
    """
    policy = _policy(rate, name, burst, cost)
    find_key = key or key_chain(["principal", "ip"])

    async def dependency(request: Request, response: Response) -> Decision:
        limiter = _limiter_of(request)
        if key is None:
            await _resolve_principal(request.scope, request.app)
        decision = await limiter.check(find_key(request.scope) or "ip:unknown", policy, cost=cost)
        if current_standing() is None and not decision.degraded:
            # no rate-limit middleware to write the fields: write this policy's
            for header, value in decision.headers():
                response.headers[header.decode()] = value.decode()
        return decision

    setattr(dependency, POLICY_ATTRIBUTE, policy)
    return RateLimitedDepends(dependency)


class RateCheck:
    """A policy bound to the request's limiter; the handler supplies the key.

    Attributes:
        policy: the quota checked.
    """

    __slots__ = ("_limiter", "policy")

    def __init__(self, limiter: RateLimiter, policy: Quota) -> None:
        self._limiter = limiter
        self.policy = policy

    async def check(self, key: str, *, cost: int = 1) -> Decision:
        """Count a request of ``key``.

        Raises:
            RateLimited: the quota is used up (a 429 problem).
            RateLimitUnavailable: the storage failed and fails closed.
        """
        return await self._limiter.check(key, self.policy, cost=cost)

    async def peek(self, key: str) -> Decision:
        """``key``'s standing without counting a request."""
        return await self._limiter.peek(key, self.policy)

    async def reset(self, key: str) -> None:
        """Make ``key``'s quota whole again."""
        await self._limiter.reset(key, self.policy)


def rate_check(rate: str | Rate | Quota, *, name: str | None = None, burst: int = 0) -> Any:
    """A dependency resolving to a :class:`RateCheck` of ``rate``.

    The policy is advertised (``RateLimit-Policy``) on every response of
    the route from the moment the dependency runs, before the body is
    validated; the ``RateLimit`` standing follows each ``check``.

    Raises:
        ValueError: the rate does not parse.
    """
    policy = _policy(rate, name, burst, 1)

    async def dependency(request: Request) -> RateCheck:
        standing = current_standing()
        if standing is not None:
            standing.applies(policy)
        return RateCheck(_limiter_of(request), policy)

    setattr(dependency, POLICY_ATTRIBUTE, policy)
    return Depends(dependency)
