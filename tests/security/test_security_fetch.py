"""Fetching user-supplied URLs through the guarded httpx transport, against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from lms_shared.security import GuardedTransport, UnsafeURLError, UrlGuard


class FakeDNS:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int) -> list[str]:
        try:
            return self.table[host]
        except KeyError:
            raise OSError(host) from None


class Server:
    """A tiny HTTP/1.1 server on 127.0.0.1 recording each request's Host header."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.redirect_to: str | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        host = next(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("host:")
        )
        self.hosts.append(host)
        if self.redirect_to:
            writer.write(
                b"HTTP/1.1 302 Found\r\nLocation: " + self.redirect_to.encode()
                + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )  # fmt: skip
        else:
            body = f"hello {host}".encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )
        await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    listener = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = listener.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        listener.close()
        await listener.wait_closed()


async def test_connects_to_the_checked_address_keeping_the_name(server: Server) -> None:
    guard = UrlGuard(
        allowed_networks=["127.0.0.0/8"], resolver=FakeDNS({"files.example": ["127.0.0.1"]})
    )
    async with httpx.AsyncClient(transport=GuardedTransport(guard)) as client:
        response = await client.get(f"http://files.example:{server.port}/avatar.png")
    # files.example exists only in the guard's resolver: reaching the server proves the
    # transport connected to the address it checked instead of resolving the name again
    assert response.status_code == 200
    assert response.text == f"hello files.example:{server.port}"
    assert server.hosts == [f"files.example:{server.port}"]


async def test_internal_targets_are_refused_before_connecting(server: Server) -> None:
    guard = UrlGuard(resolver=FakeDNS({"files.example": ["127.0.0.1"]}))
    async with httpx.AsyncClient(transport=GuardedTransport(guard)) as client:
        with pytest.raises(UnsafeURLError, match="loopback"):
            await client.get(f"http://files.example:{server.port}/")
        with pytest.raises(UnsafeURLError):
            await client.get(f"http://2130706433:{server.port}/")
    assert server.hosts == []


async def test_redirects_are_checked_too(server: Server) -> None:
    server.redirect_to = f"http://localhost:{server.port}/internal"
    guard = UrlGuard(
        allowed_hosts=["partner.example"], resolver=FakeDNS({"partner.example": ["127.0.0.1"]})
    )
    async with httpx.AsyncClient(transport=GuardedTransport(guard)) as client:
        with pytest.raises(UnsafeURLError, match="loopback host name"):
            await client.get(f"http://partner.example:{server.port}/", follow_redirects=True)
    assert server.hosts == [f"partner.example:{server.port}"]  # the redirect was not followed


async def test_https_keeps_the_name_for_sni_and_certificates() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    guard = UrlGuard(resolver=FakeDNS({"cdn.example": ["2606:2800::1", "93.184.215.14"]}))
    transport = GuardedTransport(guard, httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("https://cdn.example/pic.png")
    (sent,) = seen
    assert str(sent.url) == "https://[2606:2800::1]/pic.png"
    assert sent.headers["host"] == "cdn.example"
    assert sent.extensions["sni_hostname"] == "cdn.example"
