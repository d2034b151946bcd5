"""Idempotency keys for POST: a retried request gets the first response again.

A client sends ``Idempotency-Key: <unique key>`` with a POST. The first
request with a key *claims* it and runs; its response (status below 500) is
stored and replayed, with ``Idempotent-Replayed: true``, to every retry with
the same key and the same body, for ``ttl`` (24 hours by default). The same
key with another body is a 422 problem; a retry while the first request is
still running is a 409 problem with ``Retry-After``. A request that fails
(an exception, or a 5xx) releases its claim so that a retry runs again. A
claim whose request died is taken over after ``lease``::

    idempotency = Idempotency(SqlIdempotencyStore(service.db), clock=service.clock)

    @v1.post("/enrollments", status_code=201, response_model=Enrollment)
    async def enroll(
        body: EnrollmentCreate, request: IdempotentRequest = Depends(idempotency)
    ) -> Response:
        return await request.run(lambda: create_enrollment(body), status_code=201)

Keys are scoped by method and path; add the caller with ``scope=`` (its
tenant or principal) so that two clients' keys never collide either.
"""

# no "from __future__ import annotations": FastAPI reads __call__'s annotations at
# runtime, and an instance has no module globals to resolve strings against

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import Header, Request
from pydantic import BaseModel
from starlette.responses import Response

from lms_shared.clock import Clock, SystemClock
from lms_shared.models._errors import InvalidIdempotencyKey
from lms_shared.models.idempotency import IdempotencyStore, StoredResponse

__all__ = [
    "IDEMPOTENCY_HEADER",
    "KEY_PATTERN",
    "REPLAYED_HEADER",
    "Idempotency",
    "IdempotentRequest",
    "fingerprint_body",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEPT_HEADERS = ("content-type", "location", "etag")
_MAX_KEY = 255
# draft-ietf-httpapi-idempotency-key-header: an sf-string ("8e03978e-..."); the bare
# form most clients send is accepted too. 1-255 visible ASCII, no quote or backslash
_KEY_CHARS = r"[!#-\[\]-~]{1,255}"
KEY_PATTERN = f'^(?:"{_KEY_CHARS}"|{_KEY_CHARS})$'
"""What an ``Idempotency-Key`` value looks like (documented in OpenAPI)."""
_KEY = re.compile(KEY_PATTERN.removeprefix("^").removesuffix("$"), re.ASCII)


class Idempotency:
    """FastAPI dependency: the ``Idempotency-Key`` of a request, bound to a store.

    Args:
        store: where keys and responses are kept.
        clock: the service's clock (expiry, leases).
        required: refuse a request without the header (400).
        ttl: how long a response is replayed.
        lease: how long a claim holds before a retry may take it over
            (longer than the request timeout).
        scope: extra scope of the key from the request (tenant, caller);
            method and path are always part of it.
    """

    def __init__(
        self,
        store: IdempotencyStore,
        *,
        clock: Clock | None = None,
        required: bool = False,
        ttl: timedelta = timedelta(hours=24),
        lease: timedelta = timedelta(minutes=1),
        scope: Callable[[Request], str] | None = None,
    ) -> None:
        if ttl <= timedelta(0) or lease <= timedelta(0):
            raise ValueError("ttl and lease must be positive")
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.required = required
        self.ttl = ttl
        self.lease = lease
        self.scope = scope

    async def __call__(
        self,
        request: Request,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias=IDEMPOTENCY_HEADER,
                description="a unique key per operation (a UUID); retries reuse it",
                json_schema_extra={"pattern": KEY_PATTERN},
            ),
        ] = None,
    ) -> "IdempotentRequest":
        """The request's key, validated, and the fingerprint of its body."""
        key = _valid_key(idempotency_key)
        if key is None and self.required:
            raise InvalidIdempotencyKey(f"this operation needs an {IDEMPOTENCY_HEADER} header")
        scope = f"{request.method} {request.url.path}"
        if self.scope is not None:
            scope = f"{self.scope(request)} {scope}"
        fingerprint = fingerprint_body(await request.body()) if key is not None else ""
        return IdempotentRequest(self, key, scope, fingerprint)


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """One request's idempotency: run its handler at most once per key."""

    guard: Idempotency
    key: str | None
    scope: str
    fingerprint: str

    async def run(
        self,
        handler: Callable[[], Awaitable[Any]],
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Run ``handler`` (or replay its stored response) and answer.

        Args:
            handler: makes the result: a model, JSON-ready data or a
                ``Response``.
            status_code: the status of a model or data result.
            headers: extra headers (``Location``), stored with the response.

        Raises:
            IdempotencyKeyReused: same key, different body (422).
            IdempotencyInFlight: same key, first request still running (409).
        """
        guard = self.guard
        if self.key is None:
            return _render(await handler(), status_code, headers)
        outcome = await guard.store.claim(
            self.scope, self.key, self.fingerprint, now=guard.clock.now(), lease=guard.lease
        )
        if isinstance(outcome, StoredResponse):
            return Response(
                outcome.body,
                status_code=outcome.status_code,
                headers={**dict(outcome.headers), REPLAYED_HEADER: "true"},
            )
        try:
            response = _render(await handler(), status_code, headers)
        except BaseException:
            await guard.store.release(outcome)
            raise
        if response.status_code >= 500:
            await guard.store.release(outcome)
            return response
        kept = tuple((k, v) for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS)
        stored = StoredResponse(response.status_code, kept, bytes(response.body))
        await guard.store.complete(outcome, stored, now=guard.clock.now(), ttl=guard.ttl)
        return response


def fingerprint_body(body: bytes) -> str:
    """SHA-256 of a request body; JSON is canonicalised (key order, spacing)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def _valid_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip(" \t")  # optional whitespace around a field value (RFC 9110 §5.5)
    if _KEY.fullmatch(value) is None:
        raise InvalidIdempotencyKey(
            f"an {IDEMPOTENCY_HEADER} is 1-{_MAX_KEY} visible ASCII characters (a UUID)"
        )
    return value[1:-1] if value.startswith('"') else value  # "k" and k are one key


def _render(result: Any, status_code: int, headers: Mapping[str, str] | None) -> Response:
    if isinstance(result, Response):
        if headers:
            result.headers.update(headers)
        return result
    if isinstance(result, BaseModel):
        body = result.__pydantic_serializer__.to_json(result)
    else:
        body = orjson.dumps(result)
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")
