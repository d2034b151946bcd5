"""Components and their ordered lifecycle.

A component is anything with a name that must be started before the
service takes requests and stopped after it has drained: a database engine,
an event bus consumer, a key fetcher. Components start in the order they
were added, each under a timeout, and stop in reverse order. If one fails
to start, those already started are stopped (in reverse) and the failure
surfaces as :class:`~lms_shared.errors.ComponentError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from lms_shared.errors import ComponentError
from lms_shared.observability import get_logger

__all__ = ["Component", "FunctionComponent", "Lifecycle"]


@runtime_checkable
class Component(Protocol):
    """Something the service starts before serving and stops after draining."""

    name: str

    async def start(self) -> None:
        """Acquire resources (connect, open pools, fetch keys)."""
        ...

    async def stop(self) -> None:
        """Release them; called once, after the last request finished."""
        ...


class FunctionComponent:
    """A component made of two coroutine functions.

    Args:
        name: the component's name (logs, errors).
        start: awaited at start-up, optional.
        stop: awaited at shutdown, optional.
    """

    def __init__(
        self,
        name: str,
        start: Callable[[], Awaitable[None]] | None = None,
        stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self._start = start
        self._stop = stop

    async def start(self) -> None:
        """Run the start function, if any."""
        if self._start is not None:
            await self._start()

    async def stop(self) -> None:
        """Run the stop function, if any."""
        if self._stop is not None:
            await self._stop()


class Lifecycle:
    """Starts components in order and stops them in reverse, with timeouts.

    Args:
        timeout: seconds each component may take to start, and to stop.
    """

    def __init__(self, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.timeout = timeout
        self._components: list[Component] = []
        self._started: list[Component] = []
        self.log = get_logger("lms.lifecycle")

    def add(self, component: Component) -> None:
        """Append a component; it starts after those added before it.

        Raises:
            ValueError: a component with the same name is already added.
            RuntimeError: the lifecycle has already started.
        """
        if self._started:
            raise RuntimeError("components cannot be added after the service started")
        if any(c.name == component.name for c in self._components):
            raise ValueError(f"a component named {component.name!r} is already added")
        self._components.append(component)

    @property
    def components(self) -> list[Component]:
        """The components, in start order."""
        return list(self._components)

    async def start(self) -> None:
        """Start every component in order.

        Raises:
            ComponentError: one failed or timed out; the ones started
                before it have been stopped again.
        """
        for component in self._components:
            try:
                async with asyncio.timeout(self.timeout):
                    await component.start()
            except TimeoutError:
                await self.stop()
                raise ComponentError(
                    component.name, "start", f"timed out after {self.timeout:g}s"
                ) from None
            except Exception as exc:
                await self.stop()
                raise ComponentError(component.name, "start", repr(exc)) from exc
            self._started.append(component)
            self.log.debug("component started", component=component.name)

    async def stop(self) -> list[ComponentError]:
        """Stop the started components in reverse order.

        A component that fails or times out is logged and skipped, so the
        others still stop. Returns the failures.
        """
        failures: list[ComponentError] = []
        while self._started:
            component = self._started.pop()
            try:
                async with asyncio.timeout(self.timeout):
                    await component.stop()
            except TimeoutError:
                failures.append(
                    ComponentError(component.name, "stop", f"timed out after {self.timeout:g}s")
                )
            except Exception as exc:
                failures.append(ComponentError(component.name, "stop", repr(exc)))
            else:
                self.log.debug("component stopped", component=component.name)
        for failure in failures:
            self.log.error(
                "component failed to stop", component=failure.component, error=str(failure)
            )
        return failures
