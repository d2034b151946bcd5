"""The JWKS key set: refresh, rate-limited refetch on unknown kid, bad documents.

These use httpx's MockTransport to count and shape fetches; the hostile
corpus and the service-to-service tests fetch over a real socket.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from lms_shared.auth import (
    InvalidToken,
    JwksKeys,
    Principal,
    SigningKey,
    TokenSigner,
    TokenVerifier,
    VerifierConfig,
)
from lms_shared.auth._jwks import FetchFailed
from lms_shared.testing import ManualClock, capture_logs

from .conftest import ISSUER

URL = "http://identity.test/.well-known/jwks.json"
ALGS = frozenset({"RS256", "ES256", "EdDSA", "Ed25519"})


class Identity:
    """A JWKS endpoint whose document and status the test changes."""

    def __init__(self, *keys: SigningKey) -> None:
        self.document: Any = {"keys": [k.public_jwk() for k in keys]}
        self.status = 200
        self.requests = 0
        self.raw: bytes | None = None

    def publish(self, *keys: SigningKey) -> None:
        self.document = {"keys": [k.public_jwk() for k in keys]}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        assert request.url == URL
        body = self.raw if self.raw is not None else json.dumps(self.document).encode()
        return httpx.Response(self.status, content=body)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


async def settled(condition: Any) -> None:
    """Let woken background tasks run (the fetch takes several loop turns)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the background task did not get there")


def keyset(identity: Identity, clock: ManualClock, **options: Any) -> JwksKeys:
    return JwksKeys(URL, algorithms=ALGS, clock=clock, transport=identity.transport(), **options)


def verifier_for(keys: JwksKeys, clock: ManualClock) -> TokenVerifier:
    config = VerifierConfig(issuer=ISSUER, audiences=("courses",), cache_size=100)
    return TokenVerifier(config, keys, clock=clock)


def token(key: SigningKey, clock: ManualClock, subject: str = "ada") -> str:
    return TokenSigner(ISSUER, [key], clock=clock).issue(
        Principal(subject=subject), audience="courses"
    )


async def test_start_fetches_and_readiness_reports_it(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    identity = Identity(keys["RS256"], keys["ES256"])
    jwks = keyset(identity, clock)
    with pytest.raises(RuntimeError, match="no signing keys"):
        await jwks.ping()
    await jwks.start()
    try:
        assert jwks.loaded
        assert jwks.kids == {keys["RS256"].kid, keys["ES256"].kid}
        assert await jwks.ping() == "2 keys, fetched 0s ago"
        assert identity.requests == 1
    finally:
        await jwks.stop()


async def test_unknown_kids_refetch_at_most_once_per_interval(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    identity = Identity(keys["RS256"])
    jwks = keyset(identity, clock, min_refetch_interval=30)
    check = verifier_for(jwks, clock)
    attacker = SigningKey.generate("ES256")
    await jwks.start()
    try:
        await clock.advance(30)
        for i in range(20):  # a flood of tokens naming keys nobody published
            forged = token(SigningKey.generate("ES256", kid=f"made-up-{i}"), clock)
            with pytest.raises(InvalidToken, match="unknown"):
                await check.verify(forged)
        assert identity.requests == 2  # start + one refetch
        await clock.advance(30)
        with pytest.raises(InvalidToken, match="unknown"):
            await check.verify(token(attacker, clock))
        assert identity.requests == 3
    finally:
        await jwks.stop()


async def test_concurrent_unknown_kids_share_one_fetch(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    identity = Identity(keys["RS256"])
    jwks = keyset(identity, clock, min_refetch_interval=0)
    await jwks.start()
    try:
        rotated = keys["ES256"]
        identity.publish(keys["RS256"], rotated)
        results = await asyncio.gather(*(jwks.refresh_for(rotated.kid) for _ in range(50)))
        assert all(r is not None for r in results)
        assert identity.requests == 2
    finally:
        await jwks.stop()


async def test_a_rotated_in_key_is_picked_up_on_first_use(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    identity = Identity(keys["RS256"])
    jwks = keyset(identity, clock)
    check = verifier_for(jwks, clock)
    await jwks.start()
    try:
        await clock.advance(30)
        identity.publish(keys["ES256"], keys["RS256"])  # identity rotated: ES256 signs now
        principal = await check.verify(token(keys["ES256"], clock))
        assert principal.subject == "ada"
        assert identity.requests == 2
    finally:
        await jwks.stop()


async def test_a_retired_key_stops_verifying_at_the_next_refresh_even_cached(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    identity = Identity(keys["RS256"], keys["ES256"])
    jwks = keyset(identity, clock, refresh_interval=60)
    check = verifier_for(jwks, clock)
    await jwks.start()
    try:
        old = token(keys["RS256"], clock)
        await check.verify(old)
        assert check.cached(old) is not None
        identity.publish(keys["ES256"])
        await clock.advance(60)  # the background refresh runs
        await settled(lambda: jwks.kids == {keys["ES256"].kid})
        assert identity.requests == 2
        assert check.cached(old) is None
        with pytest.raises(InvalidToken, match="unknown"):
            await check.verify(old)
    finally:
        await jwks.stop()


async def test_background_refresh_follows_the_clock(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    identity = Identity(keys["RS256"])
    jwks = keyset(identity, clock, refresh_interval=300)
    await jwks.start()
    try:
        await clock.advance(299)
        assert identity.requests == 1
        await clock.advance(1)
        await settled(lambda: identity.requests == 2)
        await settled(lambda: clock.sleepers == 1)
        await clock.advance(600)
        await settled(lambda: identity.requests == 3)
        await settled(lambda: clock.sleepers == 1)
        assert identity.requests == 3  # one sleep per refresh: no catch-up burst
    finally:
        await jwks.stop()
    assert clock.sleepers == 0


async def test_a_failed_refresh_keeps_the_keys(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    identity = Identity(keys["RS256"])
    jwks = keyset(identity, clock, refresh_interval=60)
    await jwks.start()
    try:
        identity.status = 500
        with capture_logs() as logs:
            await clock.advance(60)
            await settled(lambda: logs.events("JWKS fetch failed"))
        assert identity.requests == 2
        assert jwks.kids == {keys["RS256"].kid}
        [line] = logs.events("JWKS fetch failed")
        assert line["kept"] == 1
        assert "answered 500" in line["error"]
    finally:
        await jwks.stop()


async def test_an_unreachable_identity_at_start_is_retried_with_backoff(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    identity = Identity(keys["RS256"])
    identity.status = 503
    jwks = keyset(identity, clock)
    await jwks.start()  # does not fail the service: readiness does
    try:
        assert not jwks.loaded
        with pytest.raises(RuntimeError):
            await jwks.ping()
        await clock.advance(0.5)
        await settled(lambda: identity.requests == 2 and clock.sleepers == 1)
        await clock.advance(1)
        await settled(lambda: identity.requests == 3 and clock.sleepers == 1)
        identity.status = 200
        await clock.advance(1.9)
        assert identity.requests == 3  # the backoff doubled: 0.5, 1, 2 seconds
        await clock.advance(0.1)
        await settled(lambda: jwks.loaded)
        assert "1 keys" in await jwks.ping()
    finally:
        await jwks.stop()


async def test_without_keys_a_token_may_trigger_a_fetch_once_a_second(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    identity = Identity(keys["RS256"])
    identity.status = 503
    kid = keys["RS256"].kid
    jwks = keyset(identity, clock, min_refetch_interval=30)
    await jwks.start()  # fails at t=0; background retries at 0.5 and 1.5, then 3.5
    try:
        await clock.advance(0.5)
        await settled(lambda: identity.requests == 2 and clock.sleepers == 1)
        await clock.advance(1.0)
        await settled(lambda: identity.requests == 3 and clock.sleepers == 1)
        identity.status = 200
        await clock.advance(0.5)
        assert await jwks.refresh_for(kid) is None  # 0.5 s since the last attempt
        assert identity.requests == 3
        await clock.advance(0.5)
        # 1 s: not 30, as no key is loaded; the caller does not wait for it
        assert await jwks.refresh_for(kid) is None
        await settled(lambda: identity.requests == 4 and jwks.loaded)
        assert jwks.find(kid) is not None
    finally:
        await jwks.stop()


def _rsa_1024_jwk() -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from lms_shared.auth._keys import public_jwk

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    return public_jwk(weak, kid="weak", alg="RS256")


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (b"<html>", "not strict JSON"),
        (b'{"keys": {}}', "no 'keys' list"),
        (b'{"keys": [], "keys": []}', "not strict JSON"),
        (b'{"keys": []}', "no usable signing key"),
        (b"x" * 70_000, "exceeds"),
        (b'{"keys": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "not strict JSON"),
    ],
)
async def test_bad_documents_are_refused(document: bytes, error: str, clock: ManualClock) -> None:
    identity = Identity()
    identity.raw = document
    jwks = keyset(identity, clock)
    await jwks.start()
    try:
        with pytest.raises(FetchFailed, match=error):
            await jwks.refresh()
    finally:
        await jwks.stop()


async def test_too_many_keys_or_duplicate_kids_are_refused(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    identity = Identity(*[keys["ES256"]] * 2)
    jwks = keyset(identity, clock, max_keys=3)
    await jwks.start()
    try:
        with pytest.raises(FetchFailed, match="two keys with kid"):
            await jwks.refresh()
        identity.publish(*[SigningKey.generate("ES256") for _ in range(4)])
        with pytest.raises(FetchFailed, match="more than 3 keys"):
            await jwks.refresh()
    finally:
        await jwks.stop()


async def test_unusable_keys_are_skipped_and_logged(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    good = keys["ES256"].public_jwk()
    private = {**keys["EdDSA"].public_jwk(), "d": "AAAA"}
    identity = Identity()
    identity.document = {
        "keys": [
            good,
            private,
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
            {**keys["RS256"].public_jwk(), "use": "enc"},
            {**keys["PS256"].public_jwk(), "alg": "PS256"},  # not in this verifier's list
            {**keys["ES256"].public_jwk(), "kid": "p384", "crv": "P-384"},
            {**keys["RS256"].public_jwk(), "kid": None},
            _rsa_1024_jwk(),
            "not an object",
        ]
    }
    jwks = keyset(identity, clock)
    with capture_logs() as logs:
        await jwks.start()
    try:
        assert jwks.kids == {good["kid"]}
        reasons = [line["reason"] for line in logs.events("JWKS key skipped")]
        assert len(reasons) == 7, reasons
        assert any("private key material" in r for r in reasons)
        assert any("'shared' carries private key material" in r for r in reasons)  # oct: k
        assert any("not a signing key" in r for r in reasons)
        assert any("'PS256', which is not allowed" in r for r in reasons)
        assert any("P-256" in r for r in reasons)
        assert any("no kid" in r for r in reasons)
        assert any("2048 bits" in r for r in reasons)
    finally:
        await jwks.stop()


async def test_stop_cancels_the_refresh_task_and_closes_the_client(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    jwks = keyset(Identity(keys["RS256"]), clock)
    await jwks.start()
    assert clock.sleepers == 1
    await jwks.stop()
    assert clock.sleepers == 0
    with pytest.raises(FetchFailed, match="not started"):
        await jwks.refresh()
    with pytest.raises(ValueError, match="positive"):
        JwksKeys(URL, algorithms=ALGS, clock=clock, refresh_interval=0)
