"""Server process: ``python -m bench._server APP FD`` serves APP on socket FD.

The parent binds the listening socket (127.0.0.1, a free port) and passes
it down, so there is no race for the port. Every app runs under the same
uvicorn settings: one worker, httptools, uvloop when installed, no uvicorn
access log. ``APP`` may also be ``raw``: a bare asyncio protocol answering
a fixed response, which measures the ceiling of the load client.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
from typing import cast

import uvicorn

from bench._apps import APPS

LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"

_RAW_RESPONSE = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
)


class _Raw(asyncio.Protocol):
    """Answers every request head it receives with a fixed response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.tail = b""

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        count = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4 :] if count else data
        if count:
            self.transport.write(_RAW_RESPONSE * count)


async def _serve_raw(sock: socket.socket) -> None:
    server = await asyncio.get_running_loop().create_server(_Raw, sock=sock)
    async with server:
        await server.serve_forever()


def serve(name: str, sock: socket.socket) -> None:
    """Serve app ``name`` on ``sock`` until SIGTERM."""
    if name == "raw":
        config = uvicorn.Config(APPS["fastapi"](), loop=LOOP)  # only for its loop factory
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(_serve_raw(sock))
        return
    config = uvicorn.Config(
        APPS[name](),
        http="httptools",
        loop=LOOP,
        lifespan="on",
        workers=1,
        access_log=False,
        log_level="warning",
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    serve(sys.argv[1], socket.socket(fileno=int(sys.argv[2])))
