"""A slow JWKS endpoint with no keys loaded yet: one shared fetch, callers fail fast (503).

The endpoint is a real HTTP server on loopback that holds every answer
until the test lets it go, so "the callers did not wait" is checked by
order of events, not by timing.
"""

from __future__ import annotations

import asyncio
import json

from lms_shared.auth import (
    JwksKeys,
    KeysUnavailable,
    Principal,
    SigningKey,
    TokenSigner,
    TokenVerifier,
    VerifierConfig,
)
from lms_shared.clock import SystemClock

from .conftest import ISSUER


class SlowJwks:
    """An HTTP server answering the JWKS only once ``release`` is set."""

    def __init__(self, key: SigningKey) -> None:
        self.document = json.dumps({"keys": [key.public_jwk()]}).encode()
        self.requests = 0
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        await self.release.wait()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/jwk-set+json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (len(self.document), self.document)
        )
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/.well-known/jwks.json"

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_concurrent_callers_share_one_fetch_and_fail_fast_while_keys_are_missing() -> None:
    key = SigningKey.generate("ES256")
    clock = SystemClock()
    token = TokenSigner(ISSUER, [key], clock=clock).issue(
        Principal(subject="ada"), audience="courses"
    )
    slow = SlowJwks(key)
    async with slow as url:
        jwks = JwksKeys(url, algorithms={"ES256"}, clock=clock, timeout=30, min_refetch_interval=0)
        verifier = TokenVerifier(
            VerifierConfig(issuer=ISSUER, audiences=("courses",), cache_size=0), jwks, clock=clock
        )
        starting = asyncio.create_task(jwks.start())  # its first fetch is held by the server
        try:
            results = await asyncio.gather(
                *(verifier.verify(token) for _ in range(4)), return_exceptions=True
            )
            assert all(isinstance(r, KeysUnavailable) for r in results), results
            assert all(r.headers.get("retry-after") for r in results)  # type: ignore[union-attr]
            for _ in range(200):  # the one fetch has reached the server and is held there
                if slow.requests:
                    break
                await asyncio.sleep(0.01)
            assert slow.requests == 1  # one shared fetch (start's), not one per caller
            slow.release.set()
            await starting
            for _ in range(500):
                if jwks.loaded:
                    break
                await asyncio.sleep(0.01)
            assert (await verifier.verify(token)).subject == "ada"
            assert slow.requests == 1
        finally:
            await jwks.stop()
