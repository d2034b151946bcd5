"""Load client: ``python -m bench._load PORT CONNECTIONS SECONDS PATH [TOKEN]``.

N keep-alive HTTP/1.1 connections to 127.0.0.1:PORT, each sending
``GET PATH`` (with ``Authorization: Bearer TOKEN`` when given) again as
soon as the previous response is complete (no pipelining), for a fixed
time. Prints one JSON object: completed 200
responses, errors (other statuses, unparsable responses, dropped
connections) and the measured seconds. Raw asyncio protocols on uvloop
(when installed) keep the client far cheaper than an HTTP library.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

_STATUS_OK = b"HTTP/1.1 200 "
_LENGTH = b"\r\ncontent-length:"


@dataclass
class _Stats:
    ok: int = 0
    errors: int = 0
    running: bool = True


def _content_length(head: bytes) -> int | None:
    lower = head.lower()
    start = lower.find(_LENGTH)
    if start < 0:
        return None
    start += len(_LENGTH)
    end = lower.find(b"\r\n", start)
    try:
        return int(lower[start : end if end >= 0 else None])
    except ValueError:
        return None


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the next request on each response."""

    def __init__(self, request: bytes, stats: _Stats) -> None:
        self.request = request
        self.stats = stats
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stats.running:
            self.stats.errors += 1
        self.transport = None

    def send(self) -> None:
        if self.transport is not None:
            self.transport.write(self.request)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(buffer[:end])
            length = _content_length(head)
            if length is None:
                self.stats.errors += 1
                self.close()
                return
            total = end + 4 + length
            if len(buffer) < total:
                return
            del buffer[:total]
            if not self.stats.running:
                return
            if head.startswith(_STATUS_OK):
                self.stats.ok += 1
            else:
                self.stats.errors += 1
            self.send()


async def run(
    port: int, connections: int, seconds: float, path: str, token: str | None = None
) -> dict[str, float]:
    """Load 127.0.0.1:``port`` for ``seconds``; return counts and elapsed time."""
    loop = asyncio.get_running_loop()
    stats = _Stats()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n".encode()

    def factory() -> _Connection:
        return _Connection(request, stats)

    clients = []
    for _ in range(connections):
        _, client = await loop.create_connection(factory, "127.0.0.1", port)
        clients.append(client)
    started = loop.time()
    for client in clients:
        client.send()
    await asyncio.sleep(seconds)
    stats.running = False
    elapsed = loop.time() - started
    for client in clients:
        client.close()
    return {"requests": stats.ok, "errors": stats.errors, "seconds": elapsed}


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop factory when installed (as uvicorn picks), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    port, connections, seconds, path = sys.argv[1:5]
    token = sys.argv[5] if len(sys.argv) > 5 else None
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        result = runner.run(run(int(port), int(connections), float(seconds), path, token))
    print(json.dumps(result))
