"""Idempotency-Key records: what a store keeps, the rules it follows, a memory store.

The HTTP part (the ``Idempotency-Key`` dependency) is
:mod:`lms_shared.http.idempotency`; the SQL store is
:class:`lms_shared.db.SqlIdempotencyStore`. Both stores follow one rule
set, :func:`decide`: an expired key is forgotten; the same key with another
fingerprint is refused; a completed key replays its response; a claimed key
whose lease ran out is taken over; otherwise the key is in flight.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final, Protocol, runtime_checkable

from lms_shared.models._errors import IdempotencyInFlight, IdempotencyKeyReused

__all__ = [
    "Claim",
    "IdempotencyRecord",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "StoredResponse",
    "decide",
]

PENDING: Final = "pending"
DONE: Final = "done"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response kept for replay: status, the headers worth keeping, body."""

    status_code: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    """A request's hold on a key; ``token`` tells it from a later takeover."""

    scope: str
    key: str
    token: str


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What a store keeps under one key: the claim, its state and the response."""

    fingerprint: str
    token: str
    state: str
    expires_at: datetime
    response: StoredResponse | None = None


def decide(
    record: IdempotencyRecord | None, fingerprint: str, now: datetime
) -> StoredResponse | None:
    """The stored response to replay, or ``None`` when the caller may claim the key.

    Raises:
        IdempotencyKeyReused: same key, another fingerprint.
        IdempotencyInFlight: claimed by a request whose lease still runs.
    """
    if record is None or record.expires_at <= now:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body; "
            "use a new key for a new operation"
        )
    if record.state == DONE and record.response is not None:
        return record.response
    wait = max(1, int((record.expires_at - now).total_seconds()) + 1)
    raise IdempotencyInFlight(
        "a request with this Idempotency-Key is still being processed; retry later",
        retry_after=min(wait, 60),
    )


class MemoryIdempotencyStore:
    """Keys in a dict: for tests and single-process tools (not shared, not durable)."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], IdempotencyRecord] = {}

    async def claim(
        self, scope: str, key: str, fingerprint: str, *, now: datetime, lease: timedelta
    ) -> Claim | StoredResponse:
        """See :class:`~lms_shared.models.IdempotencyStore`."""
        stored = decide(self._records.get((scope, key)), fingerprint, now)
        if stored is not None:
            return stored
        token = uuid.uuid4().hex
        self._records[(scope, key)] = IdempotencyRecord(fingerprint, token, PENDING, now + lease)
        return Claim(scope, key, token)

    async def complete(
        self, claim: Claim, response: StoredResponse, *, now: datetime, ttl: timedelta
    ) -> bool:
        """See :class:`~lms_shared.models.IdempotencyStore`."""
        record = self._records.get((claim.scope, claim.key))
        if record is None or record.token != claim.token:
            return False
        self._records[(claim.scope, claim.key)] = replace(
            record, state=DONE, expires_at=now + ttl, response=response
        )
        return True

    async def release(self, claim: Claim) -> None:
        """See :class:`~lms_shared.models.IdempotencyStore`."""
        record = self._records.get((claim.scope, claim.key))
        if record is not None and record.token == claim.token:
            del self._records[(claim.scope, claim.key)]

    async def purge(self, now: datetime) -> int:
        """See :class:`~lms_shared.models.IdempotencyStore`."""
        expired = [k for k, record in self._records.items() if record.expires_at <= now]
        for k in expired:
            del self._records[k]
        return len(expired)


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where claimed keys and their responses are kept (the service database)."""

    async def claim(
        self, scope: str, key: str, fingerprint: str, *, now: datetime, lease: timedelta
    ) -> Claim | StoredResponse:
        """Claim ``key`` for a request, or find what an earlier request left.

        Returns:
            A :class:`Claim` when this request must run, or the stored
            response of an earlier request with the same key and fingerprint.

        Raises:
            IdempotencyKeyReused: the key was used with another fingerprint.
            IdempotencyInFlight: the key is claimed by a running request.
        """
        ...

    async def complete(
        self, claim: Claim, response: StoredResponse, *, now: datetime, ttl: timedelta
    ) -> bool:
        """Store the response of a claimed request; ``False`` if the claim was lost."""
        ...

    async def release(self, claim: Claim) -> None:
        """Forget a claim whose request failed, so a retry runs again."""
        ...

    async def purge(self, now: datetime) -> int:
        """Delete expired keys; returns how many."""
        ...
