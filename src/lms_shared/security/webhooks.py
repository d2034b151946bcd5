"""Webhook signing and verification (the Standard Webhooks scheme).

A signed delivery carries three headers::

    webhook-id: msg_2b8f...                 unique per message (replay key)
    webhook-timestamp: 1767225600           Unix seconds when it was signed
    webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">

Several space-separated ``v1,`` signatures may be sent (one per secret
during a rotation); one matching is enough. The verifier checks, in this
order: headers present and well-formed, the timestamp within
``tolerance`` of the injected clock, a signature matching in constant
time, and only then that the id was not seen before (so forged ids cannot
fill the replay cache). Secrets are ``whsec_`` + base64 of at least 24
random bytes (:func:`new_webhook_secret`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

from lms_shared.caching import BoundedCache
from lms_shared.clock import Clock
from lms_shared.security._errors import (
    INVALID_WEBHOOK_SIGNATURE,
    WebhookReplayError,
    WebhookSignatureError,
)

__all__ = [
    "INVALID_WEBHOOK_SIGNATURE",
    "MemoryReplayCache",
    "ReplayCache",
    "WebhookMessage",
    "WebhookReplayError",
    "WebhookSignatureError",
    "WebhookSigner",
    "WebhookVerifier",
    "new_webhook_secret",
]

_PREFIX = "whsec_"
_ID = re.compile(r"[A-Za-z0-9._:-]{1,256}")
_MIN_SECRET_BYTES = 24


def new_webhook_secret() -> str:
    """A fresh ``whsec_...`` secret (32 random bytes)."""
    return _PREFIX + base64.b64encode(os.urandom(32)).decode()


def _secret_bytes(secret: str | bytes | SecretStr) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    if isinstance(secret, bytes):
        raw = secret
    elif secret.startswith(_PREFIX):
        try:
            raw = base64.b64decode(secret[len(_PREFIX) :], validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret is base64 after the prefix") from None
    else:
        raw = secret.encode()
    if len(raw) < _MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret needs at least {_MIN_SECRET_BYTES} bytes")
    return raw


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


class WebhookSigner:
    """Signs outgoing webhook bodies.

    Args:
        secrets: the current secret first; during a rotation also the next
            one, so receivers on either secret accept the delivery.
        clock: the clock stamping the deliveries.
    """

    def __init__(self, secrets: Sequence[str | bytes | SecretStr], *, clock: Clock) -> None:
        if isinstance(secrets, str | bytes | SecretStr) or not secrets:
            raise ValueError("give the secrets as a non-empty list")
        self._keys = [_secret_bytes(s) for s in secrets]
        self.clock = clock

    def sign(self, body: bytes, *, msg_id: str | None = None) -> dict[str, str]:
        """The headers to send with ``body``.

        Args:
            body: the exact bytes that will be sent.
            msg_id: the message id; a new one when omitted. Reuse the id
                when retrying the same message.
        """
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        if not _ID.fullmatch(msg_id):
            raise ValueError("a webhook id is 1-256 of A-Z a-z 0-9 . _ : -")
        timestamp = int(self.clock.now().timestamp())
        signatures = " ".join(
            "v1," + base64.b64encode(_signature(k, msg_id, timestamp, body)).decode()
            for k in self._keys
        )
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures,
        }


class ReplayCache(Protocol):
    """Remembers the ids of accepted messages until they expire."""

    def add(self, msg_id: str, expires_at: float, *, now: float) -> bool:
        """Record ``msg_id`` until ``expires_at``; ``False`` if already recorded.

        ``now`` (the verifier's clock) lets the cache drop expired ids.
        """
        ...


class MemoryReplayCache:
    """A bounded in-process :class:`ReplayCache` (one instance's deliveries).

    Several replicas behind a load balancer each see only their share: use
    the consumer's idempotency (inbox) for exactly-once effects.

    Ids are kept with their expiry (in the caller's ``now`` seconds) in a
    :class:`~lms_shared.caching.BoundedCache`: an expired id counts as
    unseen, and stays until a newer one pushes it out (the oldest go first
    when full), so memory is bounded by ``max_entries``.

    Args:
        max_entries: ids kept at most; the oldest go first when full.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._seen: BoundedCache[str, float] = BoundedCache(max_entries)

    def add(self, msg_id: str, expires_at: float, *, now: float) -> bool:
        """Record ``msg_id`` until ``expires_at``; ``False`` when already seen."""
        until = self._seen.get(msg_id)
        if until is not None and now <= until:
            return False
        self._seen.set(msg_id, expires_at)
        return True


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """A verified delivery.

    Attributes:
        id: the ``webhook-id``.
        timestamp: the signing time (Unix seconds).
        body: the verified body bytes.
    """

    id: str
    timestamp: int
    body: bytes


class WebhookVerifier:
    """Verifies incoming webhooks: signature, time window and replays.

    Args:
        secrets: every secret a sender may use (current and previous).
        clock: the clock the timestamp is checked against.
        tolerance: seconds a delivery may be early or late (5 minutes).
        replay_cache: where accepted ids are kept; an in-process
            :class:`MemoryReplayCache` by default.
    """

    def __init__(
        self,
        secrets: Sequence[str | bytes | SecretStr],
        *,
        clock: Clock,
        tolerance: float = 300.0,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        if isinstance(secrets, str | bytes | SecretStr) or not secrets:
            raise ValueError("give the secrets as a non-empty list")
        if tolerance <= 0:
            raise ValueError("tolerance must be positive")
        self._keys = [_secret_bytes(s) for s in secrets]
        self.clock = clock
        self.tolerance = tolerance
        self.replay_cache: ReplayCache = (
            replay_cache if replay_cache is not None else MemoryReplayCache()
        )

    def verify(self, body: bytes, headers: Mapping[str, str]) -> WebhookMessage:
        """Check a delivery and return it.

        Args:
            body: the raw request body, exactly as received.
            headers: the request headers (a Starlette ``Headers`` is fine);
                names are matched case-insensitively.

        Raises:
            WebhookSignatureError: headers missing or malformed, no match.
            WebhookReplayError: timestamp outside the window, or id seen.
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        msg_id = lowered.get("webhook-id", "")
        stamp = lowered.get("webhook-timestamp", "")
        given = lowered.get("webhook-signature", "")
        if not (msg_id and stamp and given):
            raise WebhookSignatureError(
                "the webhook-id, -timestamp and -signature headers are required"
            )
        if (
            not _ID.fullmatch(msg_id)
            or not stamp.isascii()
            or not stamp.isdigit()
            or len(stamp) > 12
        ):
            raise WebhookSignatureError("malformed webhook-id or webhook-timestamp header")
        timestamp = int(stamp)
        now = self.clock.now().timestamp()
        if abs(now - timestamp) > self.tolerance:
            raise WebhookReplayError(
                f"webhook timestamp is outside the {self.tolerance:g} s tolerance"
            )
        candidates = []
        for item in given.split(" "):
            version, _, value = item.partition(",")
            if version == "v1" and value:
                try:
                    candidates.append(base64.b64decode(value, validate=True))
                except binascii.Error:
                    continue
        if not candidates:
            raise WebhookSignatureError("no v1 signature in the webhook-signature header")
        expected = [_signature(k, msg_id, timestamp, body) for k in self._keys]
        matched = False
        for exp in expected:  # no early exit: the time spent does not depend on which matched
            for cand in candidates:
                matched |= hmac.compare_digest(exp, cand)
        if not matched:
            raise WebhookSignatureError("webhook signature does not match")
        if not self.replay_cache.add(msg_id, timestamp + self.tolerance, now=now):
            raise WebhookReplayError("webhook already delivered (replayed id)")
        return WebhookMessage(msg_id, timestamp, body)
