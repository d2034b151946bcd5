"""ASGI type aliases (a leaf: every floor may use them).

Pure ASGI middleware lives in :mod:`lms_shared.http`, but capabilities that
read a request scope without being HTTP glue (none today) and the test kit
type against the same aliases, so they sit below every package.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
