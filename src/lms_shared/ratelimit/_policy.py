"""Rates, policies and decisions, and their IETF ``RateLimit`` header values.

A :class:`Quota` is a named quota: ``Quota("login", Rate.parse("5/minute"))``.
It is enforced with GCRA (the generic cell rate algorithm): each client
key has one stored number, the *theoretical arrival time* (TAT). A request
costs ``interval = period / limit``; it is admitted when the TAT it would
push forward stays within ``burst * interval`` of now. That is a sliding
window without buckets: ``limit`` requests at once (a burst), then one
every ``interval``, never more than ``limit`` in any ``period``.

Times are integer microseconds so every backend (Python ints here, Lua
doubles in Redis) computes exactly the same thing.

The headers follow draft-ietf-httpapi-ratelimit-headers (structured
fields): ``RateLimit-Policy: "login";q=5;w=60`` describes the quota and
``RateLimit: "login";r=2;t=12`` the client's standing: ``r`` requests
left, ``t`` seconds until more quota is made available (draft -10 and
later: with GCRA that is the next request's worth, not the whole quota;
when refused it matches ``Retry-After``). A response lists every policy
that applied to its request (:class:`~lms_shared.ratelimit.Standing`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from lms_shared.errors import SettingsError
from lms_shared.settings import Settings

__all__ = ["Decision", "Quota", "Rate", "default_quota"]

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*([a-z]+)\s*$", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``period`` seconds.

    Attributes:
        limit: requests allowed per period (>= 1).
        period: the period in whole seconds (>= 1).
    """

    limit: int
    period: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period < 1:
            raise ValueError("a rate needs limit >= 1 and period >= 1 second")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Read ``"100/minute"``, ``"5/10s"``, ``"1000 per day"``, ``"10/second"``.

        Raises:
            ValueError: not in that form.
        """
        match = _RATE.match(text.lower())
        if not match or match.group(3) not in _UNITS:
            raise ValueError(f"a rate looks like '100/minute' or '5/10s', got {text!r}")
        count = int(match.group(2) or 1)
        return cls(int(match.group(1)), count * _UNITS[match.group(3)])

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


@dataclass(frozen=True, slots=True)
class Quota:
    """A named quota, enforced per client key.

    Attributes:
        name: shown in the headers and used in storage keys (1-64 of
            ``A-Z a-z 0-9 . _ -``).
        rate: the sustained rate.
        burst: requests admitted at once from a full quota (``rate.limit``
            by default).
    """

    name: str
    rate: Rate
    burst: int = 0
    interval_us: int = field(init=False, repr=False)
    tolerance_us: int = field(init=False, repr=False)
    policy_header: bytes = field(init=False, repr=False)
    policy_field: tuple[bytes, bytes] = field(init=False, repr=False)
    item_prefix: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"a policy name is 1-64 of A-Z a-z 0-9 . _ -, got {self.name!r}")
        burst = self.burst or self.rate.limit
        if burst < 1:
            raise ValueError("burst must be at least 1")
        interval = max(1, round(self.rate.period * MICROS / self.rate.limit))
        object.__setattr__(self, "burst", burst)
        object.__setattr__(self, "interval_us", interval)
        object.__setattr__(self, "tolerance_us", interval * burst)
        header = f'"{self.name}";q={self.rate.limit};w={self.rate.period}'
        object.__setattr__(self, "policy_header", header.encode())
        object.__setattr__(self, "policy_field", (b"ratelimit-policy", header.encode()))
        object.__setattr__(self, "item_prefix", f'"{self.name}";r='.encode())

    @classmethod
    def of(cls, rate: str | Rate | Quota, name: str = "default", burst: int = 0) -> Quota:
        """A policy from a rate string, a :class:`Rate`, or a policy (returned as is)."""
        if isinstance(rate, Quota):
            return rate
        return cls(name, rate if isinstance(rate, Rate) else Rate.parse(rate), burst)

    def decide(self, allowed: bool, tat_us: int, now_us: int, cost: int) -> Decision:
        """The decision for a storage answer (admitted?, TAT after, storage's now)."""
        if allowed:
            ahead = tat_us - now_us if tat_us > now_us else 0
            if ahead == 0:  # whole: nothing more is to come
                return Decision(self, True, self.burst, 0, 0)
            spare = self.tolerance_us - ahead
            remaining = spare // self.interval_us
            # seconds until one more request is admitted (draft -10: "until
            # additional quota is made available"), not until the quota is whole
            more = self.interval_us - spare % self.interval_us
            return Decision(self, True, remaining if remaining > 0 else 0, -(-more // MICROS), 0)
        wait = max(tat_us, now_us) + self.interval_us * cost - self.tolerance_us - now_us
        retry = max(1, math.ceil(wait / MICROS))
        return Decision(self, False, 0, retry, retry)


class Decision(NamedTuple):
    """The outcome of one rate-limit check (a tuple: cheap to make, immutable).

    Attributes:
        policy: the policy checked.
        allowed: whether the request is admitted.
        remaining: requests left right now (``r``).
        reset: seconds until one more request is admitted (``t``; 0 when
            the quota is whole); when refused, until this one would be.
        retry_after: seconds to wait when refused (``Retry-After``), else 0.
        degraded: admitted without a check because the storage failed.
    """

    policy: Quota
    allowed: bool
    remaining: int
    reset: int
    retry_after: int
    degraded: bool = False

    @property
    def header(self) -> bytes:
        """The ``RateLimit`` field value, ``"name";r=..;t=..``."""
        return self.policy.item_prefix + b"%d;t=%d" % (self.remaining, self.reset)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``RateLimit``, ``RateLimit-Policy`` and, when refused, ``Retry-After``."""
        out = [(b"ratelimit", self.header), (b"ratelimit-policy", self.policy.policy_header)]
        if not self.allowed:
            out.append((b"retry-after", str(self.retry_after).encode()))
        return out


def default_quota(settings: Settings) -> Quota | None:
    """The ``default`` policy of ``LMS_RATELIMIT_DEFAULT`` (``None`` when unset).

    Raises:
        SettingsError: naming ``LMS_RATELIMIT_DEFAULT`` when it does not parse.
    """
    if not settings.ratelimit_default:
        return None
    try:
        return Quota.of(settings.ratelimit_default)
    except ValueError as exc:
        raise SettingsError([("LMS_RATELIMIT_DEFAULT", str(exc))]) from None
