"""What the broker transports share: names, size bounds and handler tasks.

The RabbitMQ and Redis Streams transports map :class:`Message` values onto
their wire formats and back; both check a namespace the same way, bound
what they send and what they accept with the same :class:`EnvelopeLimits`,
and run handlers under the same rules (at most ``concurrency`` in flight, a
raising handler is logged and left unsettled, ``stop`` drains or cancels).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lms_shared.events._envelope import EnvelopeLimits
from lms_shared.events._errors import InvalidEvent
from lms_shared.events._transport import Delivery, Handler, Message

__all__ = [
    "HandlerTasks",
    "boolean",
    "check_namespace",
    "check_size",
    "describe",
    "message_size",
    "optional_int",
    "split_options",
]

_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_namespace(namespace: str) -> str:
    """``namespace`` if it is lower-case ``a-z0-9_-`` (at most 64), else :class:`ValueError`."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ValueError(f"namespace {namespace!r} must match {_NAMESPACE.pattern}")
    return namespace


def split_options(
    url: str, known: Mapping[str, Callable[[str], Any]], options: object, overrides: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Our options out of ``url``'s query: the URL for the driver and the constructor keywords.

    ``known`` maps an option to its parser; keyword ``overrides`` win over the
    URL, which wins over ``options.namespace`` (the factory's
    :class:`~lms_shared.events.TransportOptions`, when given).

    Raises:
        ValueError: a known option's value does not parse.
    """
    parts = urlsplit(url)
    ours: dict[str, Any] = {}
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in known:
            rest.append((name, value))
            continue
        try:
            ours[name] = known[name](value)
        except ValueError:
            raise ValueError(f"URL option {name}={value!r} is malformed") from None
    namespace = getattr(options, "namespace", None)
    if isinstance(namespace, str) and "namespace" in known:
        ours.setdefault("namespace", namespace)
    ours.update(overrides)
    return urlunsplit(parts._replace(query=urlencode(rest))), ours


def boolean(text: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``) from a URL option."""
    lowered = text.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise ValueError(text)


def optional_int(text: str) -> int | None:
    """An integer, or ``none`` for no bound, from a URL option."""
    return None if text.strip().lower() == "none" else int(text)


def message_size(attributes: Mapping[str, str], data: bytes) -> int:
    """The bytes a message takes: its data plus every attribute name and value (UTF-8)."""
    return len(data) + sum(
        len(name.encode()) + len(value.encode()) for name, value in attributes.items()
    )


def check_size(message: Message, limits: EnvelopeLimits) -> None:
    """Refuse a message larger than ``limits`` allow (the same bound the receiver applies).

    Raises:
        InvalidEvent: too many attributes, or more than ``limits.max_bytes``.
    """
    if len(message.attributes) > limits.max_attributes:
        raise InvalidEvent(f"an event carries at most {limits.max_attributes} attributes")
    if message_size(message.attributes, message.data) > limits.max_bytes:
        raise InvalidEvent(f"the event is larger than {limits.max_bytes} bytes")


class HandlerTasks:
    """The handler calls of one subscription: spawned, counted, drained or cancelled.

    Args:
        handler: the subscription's handler.
        on_error: called with the delivery and the exception a handler raised
            (the delivery stays unsettled).
        on_done: called after each handler call ends (frees capacity).
    """

    def __init__(
        self,
        handler: Handler,
        on_error: Callable[[Delivery, Exception], None],
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self._handler = handler
        self._on_error = on_error
        self._on_done = on_done
        self.tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self.tasks)

    def spawn(self, delivery: Delivery) -> None:
        """Run the handler for ``delivery`` in its own task."""
        task = asyncio.get_running_loop().create_task(self._run(delivery))
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    async def _run(self, delivery: Delivery) -> None:
        try:
            await self._handler(delivery)
        except Exception as exc:
            self._on_error(delivery, exc)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if self._on_done is not None:
            self._on_done()

    async def stop(self, *, drain: bool, timeout: float, grace: float = 5.0) -> int:
        """With ``drain``, wait up to ``timeout`` seconds for the calls; cancel what is left.

        A call that ignores its cancellation is waited for ``grace`` seconds
        at most, then left running: stopping is bounded whatever a handler does.

        Returns:
            How many calls were left running.
        """
        running = set(self.tasks)
        if drain and running:
            await asyncio.wait(running, timeout=timeout)
        for task in running:
            task.cancel()
        if not running:
            return 0
        _, left = await asyncio.wait(running, timeout=grace)
        return len(left)


def describe(exc: BaseException, *, secret: str = "", shown: str = "") -> str:
    """``"<Type>: <text>"`` of a driver error, with ``secret`` (a URL) replaced by ``shown``."""
    text = f"{type(exc).__name__}: {exc}"
    return text.replace(secret, shown) if secret else text
