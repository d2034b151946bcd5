"""Webhook signing and verification: Standard Webhooks headers, replays, tampering."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from fastapi import Request

from lms_shared import Service
from lms_shared.security.webhooks import (
    MemoryReplayCache,
    WebhookReplayError,
    WebhookSignatureError,
    WebhookSigner,
    WebhookVerifier,
    new_webhook_secret,
)
from lms_shared.testing import ManualClock, service_client

SECRET = new_webhook_secret()
BODY = json.dumps({"type": "lms.grade.published", "grade_id": 7}).encode()


@pytest.fixture
def signer(clock: ManualClock) -> WebhookSigner:
    return WebhookSigner([SECRET], clock=clock)


@pytest.fixture
def verifier(clock: ManualClock) -> WebhookVerifier:
    return WebhookVerifier([SECRET], clock=clock)


def test_signed_delivery_verifies(signer: WebhookSigner, verifier: WebhookVerifier) -> None:
    headers = signer.sign(BODY, msg_id="msg_1")
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == "1767225600"
    assert headers["webhook-signature"].startswith("v1,")
    message = verifier.verify(BODY, headers)
    assert (message.id, message.timestamp, message.body) == ("msg_1", 1767225600, BODY)


def test_known_answer_of_the_standard_webhooks_scheme(clock: ManualClock) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    headers = WebhookSigner([secret], clock=clock).sign(b'{"a":1}', msg_id="msg_p5jXN8AQM9LWM0D4")
    import hashlib
    import hmac

    expected = hmac.new(b"k" * 32, b'msg_p5jXN8AQM9LWM0D4.1767225600.{"a":1}', hashlib.sha256)
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected.digest()).decode()


def test_replayed_delivery_is_refused(signer: WebhookSigner, verifier: WebhookVerifier) -> None:
    headers = signer.sign(BODY)
    verifier.verify(BODY, headers)
    with pytest.raises(WebhookReplayError, match="already delivered"):
        verifier.verify(BODY, headers)


async def test_stale_and_future_timestamps_are_refused(
    signer: WebhookSigner, verifier: WebhookVerifier, clock: ManualClock
) -> None:
    headers = signer.sign(BODY)
    await clock.advance(301)
    with pytest.raises(WebhookReplayError, match="tolerance"):
        verifier.verify(BODY, headers)
    future = WebhookSigner([SECRET], clock=ManualClock(clock.now())).sign(BODY)
    future["webhook-timestamp"] = str(int(clock.now().timestamp()) + 600)
    with pytest.raises(WebhookSignatureError):
        verifier.verify(BODY, future)


async def test_within_the_window_is_accepted(
    signer: WebhookSigner, verifier: WebhookVerifier, clock: ManualClock
) -> None:
    headers = signer.sign(BODY)
    await clock.advance(299)
    assert verifier.verify(BODY, headers).id == headers["webhook-id"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),
        lambda h, b: (h, b.replace(b"7", b"8")),
        lambda h, b: ({**h, "webhook-id": "msg_other"}, b),
        lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) - 1)}, b),
        lambda h, b: ({**h, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}, b),
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),
        lambda h, b: ({**h, "webhook-signature": "v1,***"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "soon"}, b),
        lambda h, b: ({**h, "webhook-id": "../../etc"}, b),
    ],
    ids=[
        "appended-byte",
        "changed-body",
        "other-id",
        "other-timestamp",
        "forged-signature",
        "unknown-version",
        "bad-base64",
        "missing-signature",
        "bad-timestamp",
        "bad-id",
    ],
)
def test_tampered_deliveries_are_refused(
    signer: WebhookSigner,
    verifier: WebhookVerifier,
    tamper: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]],
) -> None:
    headers, body = tamper(signer.sign(BODY), BODY)
    with pytest.raises(WebhookSignatureError):
        verifier.verify(body, headers)


def test_forged_ids_do_not_fill_the_replay_cache(
    signer: WebhookSigner, verifier: WebhookVerifier
) -> None:
    headers = signer.sign(BODY, msg_id="msg_victim")
    forged = {**headers, "webhook-signature": "v1," + base64.b64encode(b"f" * 32).decode()}
    with pytest.raises(WebhookSignatureError):
        verifier.verify(BODY, forged)
    assert verifier.verify(BODY, headers).id == "msg_victim"


def test_secret_rotation_accepts_either_secret(clock: ManualClock) -> None:
    new = new_webhook_secret()
    both = WebhookSigner([SECRET, new], clock=clock).sign(BODY)
    assert len(both["webhook-signature"].split(" ")) == 2
    assert WebhookVerifier([new], clock=clock).verify(BODY, both)
    assert WebhookVerifier([SECRET], clock=clock).verify(BODY, both)
    with pytest.raises(WebhookSignatureError):
        WebhookVerifier([new_webhook_secret()], clock=clock).verify(BODY, both)


def test_weak_or_malformed_secrets_are_refused(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="at least 24 bytes"):
        WebhookSigner(["short"], clock=clock)
    with pytest.raises(ValueError, match="base64"):
        WebhookVerifier(["whsec_%%%"], clock=clock)
    with pytest.raises(ValueError, match="list"):
        WebhookSigner(SECRET, clock=clock)  # type: ignore[arg-type]


def test_replay_cache_is_bounded_and_expires() -> None:
    cache = MemoryReplayCache(max_entries=3)
    assert all(cache.add(f"m{i}", 100.0, now=0.0) for i in range(5))
    assert cache.add("m0", 100.0, now=0.0)  # pushed out by newer ids
    assert not cache.add("m4", 100.0, now=0.0)
    assert cache.add("m4", 300.0, now=200.0)  # expired entries are dropped


async def test_verification_failure_is_a_400_problem(make_service: Callable[..., Service]) -> None:
    service = make_service()
    verifier = WebhookVerifier([SECRET], clock=service.clock)

    @service.router.post("/v1/hooks/grades")
    async def receive(request: Request) -> dict[str, str]:
        message = verifier.verify(await request.body(), request.headers)
        return {"id": message.id}

    headers = WebhookSigner([SECRET], clock=service.clock).sign(BODY)
    async with service_client(service) as client:
        ok = await client.post("/v1/hooks/grades", content=BODY, headers=headers)
        again = await client.post("/v1/hooks/grades", content=BODY, headers=headers)
        forged = await client.post("/v1/hooks/grades", content=BODY + b"x", headers=headers)
    assert ok.json() == {"id": headers["webhook-id"]}
    assert again.status_code == forged.status_code == 400
    assert again.json()["code"] == "invalid-webhook-signature"
    assert again.json()["detail"] == "webhook already delivered (replayed id)"
    assert forged.json()["detail"] == "webhook signature does not match"
