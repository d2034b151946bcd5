"""Fallbacks: an answer of last resort when a dependency cannot give one.

A :class:`Fallback` names what it covers (``on=``; :class:`CircuitOpen`
by default, never every exception, which would hide bugs) and an async
handler that receives the exception and gives the answer (a cached copy,
a default, a degraded result); :meth:`Fallback.value` is the constant
case. Anything not covered propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from lms_shared.resilience._errors import CircuitOpen

__all__ = ["Fallback"]

T = TypeVar("T")

Covered = type[Exception] | tuple[type[Exception], ...]


class Fallback(Generic[T]):
    """What to answer when a call fails with one of ``on``.

    Example::

        stale = Fallback(read_cache, on=(CircuitOpen, BulkheadFull))
        course = await stale.call(lambda: courses.get(course_id))

    Args:
        handler: an async function of the exception, giving the answer.
        on: the exception classes covered.

    Raises:
        TypeError: ``on`` is not exception classes.
    """

    def __init__(
        self, handler: Callable[[Exception], Awaitable[T]], *, on: Covered = CircuitOpen
    ) -> None:
        classes = on if isinstance(on, tuple) else (on,)
        valid = all(isinstance(c, type) and issubclass(c, Exception) for c in classes)
        if not classes or not valid:
            raise TypeError(f"Fallback on= needs Exception classes, got {on!r}")
        self.on = classes
        self.handler = handler

    @classmethod
    def value(cls, value: T, *, on: Covered = CircuitOpen) -> Fallback[T]:
        """A fallback that always answers ``value``."""

        async def constant(_: Exception) -> T:
            return value

        return cls(constant, on=on)

    def __repr__(self) -> str:
        return f"Fallback(on={self.on!r})"

    def handles(self, exc: BaseException) -> bool:
        """Whether ``exc`` is covered."""
        return isinstance(exc, self.on)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()``; on a covered exception, the handler's answer instead."""
        try:
            return await fn()
        except Exception as exc:
            if not isinstance(exc, self.on):
                raise
            return await self.handler(exc)
