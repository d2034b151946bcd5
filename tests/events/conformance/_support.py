"""Helpers of the conformance suite: bounded polling and recording handlers."""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from lms_shared.events import Delivery, Message, Transport

TransportFactory = Callable[[str], AbstractAsyncContextManager[Transport]]


@dataclass(frozen=True)
class Backend:
    """A backend under test: its module's ``transport`` and ``unreachable`` factories."""

    module: str

    def _load(self, attribute: str) -> TransportFactory:
        module = importlib.import_module(f"{__package__}.{self.module}")
        factory: TransportFactory = getattr(module, attribute)
        return factory

    def transport(self, namespace: str) -> AbstractAsyncContextManager[Transport]:
        """A started transport in its own namespace."""
        return self._load("transport")(namespace)

    def unreachable(self, namespace: str) -> AbstractAsyncContextManager[Transport]:
        """An unstarted transport whose broker cannot be reached."""
        return self._load("unreachable")(namespace)


async def eventually(
    predicate: Callable[[], bool], timeout: float = 10.0, *, interval: float = 0.01
) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def message(type: str = "lms.test.happened", data: bytes = b"{}", **extra: str) -> Message:
    """A message with a fresh id."""
    attributes = {
        "id": uuid.uuid4().hex,
        "source": "/tests/conformance",
        "specversion": "1.0",
        "type": type,
        "datacontenttype": "application/json",
        **extra,
    }
    return Message(attributes, data)


@dataclass
class Recorder:
    """A handler that records every delivery and acks it (unless told otherwise)."""

    ack: bool = True
    seen: list[Delivery] = field(default_factory=list)
    on_delivery: Callable[[Delivery], Awaitable[None]] | None = None

    async def __call__(self, delivery: Delivery) -> None:
        self.seen.append(delivery)
        if self.on_delivery is not None:
            await self.on_delivery(delivery)
        elif self.ack:
            await delivery.ack()

    def ids(self) -> list[str]:
        """The ids of the delivered messages, in delivery order."""
        return [d.message.id for d in self.seen]
