"""Exponential backoff with full jitter, with the random source injected.

``delay(n) = random() * min(maximum, initial * multiplier ** (n - 1))``:
the "full jitter" of the AWS Architecture Blog ("Exponential Backoff and
Jitter", 2015), which spreads the retries of many clients failing at the
same moment over the whole window instead of synchronising them.

Why not tenacity's ``wait_random_exponential``: it draws from the
:mod:`random` module's global generator (a test cannot make it
deterministic without patching) and needs a ``RetryCallState`` per call,
which is part of what makes tenacity cost tens of microseconds per call
(see :mod:`lms_shared.resilience._policy`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]

# beyond this many doublings every useful ceiling is already reached, and
# multiplier ** n would overflow a float
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before each retry.

    Attributes:
        initial: ceiling of the first retry's delay, in seconds.
        maximum: no delay is ever longer than this.
        multiplier: growth of the ceiling per retry (2.0 doubles it).
        jitter: full jitter (a uniform draw between 0 and the ceiling);
            ``False`` waits exactly the ceiling (for tests and for callers
            that jitter elsewhere).

    Raises:
        ValueError: a negative delay, ``maximum < initial`` or ``multiplier < 1``.
    """

    initial: float = 0.1
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial) and self.initial >= 0):
            raise ValueError(f"backoff initial delay must be >= 0 seconds, got {self.initial}")
        if not (math.isfinite(self.maximum) and self.maximum >= self.initial):
            raise ValueError(
                f"backoff maximum must be finite and >= initial ({self.initial}), "
                f"got {self.maximum}"
            )
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError(f"backoff multiplier must be >= 1, got {self.multiplier}")

    def ceiling(self, retry: int) -> float:
        """The longest delay before retry number ``retry`` (1 = the first retry)."""
        exponent = min(max(retry - 1, 0), _MAX_EXPONENT)
        return min(self.maximum, self.initial * self.multiplier**exponent)

    def delay(self, retry: int, random: Callable[[], float]) -> float:
        """Seconds to wait before retry number ``retry``.

        Args:
            retry: 1 for the first retry (the second attempt), 2 for the next...
            random: returns a float in ``[0, 1)`` (:func:`random.random`, or a
                seeded ``random.Random().random`` in tests).
        """
        ceiling = self.ceiling(retry)
        return ceiling * random() if self.jitter else ceiling
