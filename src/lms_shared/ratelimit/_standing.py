"""What the rate limits of one request decided, for its ``RateLimit`` fields.

A request can meet several policies: the route's (or the default) in the
middleware, ``rate_limited`` dependencies, and checks made in code
(``service.rate_limits.check(f"account:{email}", ACCOUNT)``). Each of them
records into the request's :class:`Standing` (a context variable the HTTP
middleware sets; the limiter writes to it when one is set), and the
response, whatever its status, carries one ``RateLimit-Policy`` item per
policy that applied and one ``RateLimit`` item per decision
(draft-ietf-httpapi-ratelimit-headers: "A server MAY return RateLimit
header fields independently of the response status code")::

    RateLimit-Policy: "login";q=20;w=60, "login-account";q=5;w=60
    RateLimit: "login";r=17;t=3, "login-account";r=4;t=12

No HTTP here: the middleware adds :meth:`Standing.fields` to the response
headers; inside a request nothing else writes them (a ``RateLimited``
raised while a standing is active carries only ``Retry-After``).
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType

from lms_shared.ratelimit._policy import Decision, Quota

__all__ = ["CURRENT_STANDING", "Standing", "current_standing"]

CURRENT_STANDING: ContextVar[Standing | None] = ContextVar("lms_ratelimit_standing", default=None)
"""The standing of the request being served (package-internal; read :func:`current_standing`)."""


def current_standing() -> Standing | None:
    """The standing of the request being served (``None`` outside one)."""
    return CURRENT_STANDING.get()


class Standing:
    """The policies that applied to one request and their latest decisions.

    Use it as a context manager around the request (the rate-limit
    middleware does); inside, :class:`~lms_shared.ratelimit.RateLimiter`
    records every decision it makes.
    """

    __slots__ = ("_decisions", "_policies", "_token")

    def __init__(self) -> None:
        self._policies: dict[str, Quota] = {}
        self._decisions: dict[str, Decision] = {}
        self._token: Token[Standing | None] | None = None

    def __enter__(self) -> Standing:
        self._token = CURRENT_STANDING.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            CURRENT_STANDING.reset(self._token)
            self._token = None

    def __bool__(self) -> bool:
        return bool(self._policies)

    def applies(self, policy: Quota) -> None:
        """Advertise ``policy`` on the response, decided on or not."""
        self._policies.setdefault(policy.name, policy)

    def record(self, decision: Decision) -> None:
        """Keep ``decision`` (the last one per policy wins).

        A degraded decision (the storage failed and the request was let
        through) advertises its policy but reports no standing: it is
        not known.
        """
        name = decision.policy.name
        self._policies.setdefault(name, decision.policy)
        if decision.degraded:
            self._decisions.pop(name, None)
        else:
            self._decisions[name] = decision

    @property
    def policies(self) -> tuple[Quota, ...]:
        """The policies that applied, in the order they were met."""
        return tuple(self._policies.values())

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """The latest decision of each policy, in the order they were met."""
        return tuple(self._decisions.values())

    @property
    def violated(self) -> list[str]:
        """Names of the policies whose latest decision refused the request."""
        return [name for name, d in self._decisions.items() if not d.allowed]

    def fields(self) -> list[tuple[bytes, bytes]]:
        """``RateLimit-Policy`` and ``RateLimit`` (each one list field), or nothing."""
        policies = self._policies
        decisions = self._decisions
        if len(policies) == 1:  # the common case, without joins
            (policy,) = policies.values()
            if not decisions:
                return [policy.policy_field]
            (decision,) = decisions.values()
            return [policy.policy_field, (b"ratelimit", decision.header)]
        if not policies:
            return []
        out = [(b"ratelimit-policy", b", ".join([p.policy_header for p in policies.values()]))]
        if decisions:
            out.append((b"ratelimit", b", ".join([d.header for d in decisions.values()])))
        return out
