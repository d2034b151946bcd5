"""API keys: shown once, stored as a hash, checked in constant time.

A key reads ``lms_3f9c1a2b8d4e5f60_<43 random characters>``: a prefix
that says what it is (secret scanners can match it), a public key id (16
hex digits, the lookup key, safe to log), and 256 bits from
:func:`secrets.token_urlsafe`. Only the SHA-256 of the whole key is stored.

Why SHA-256 and not argon2: a slow, salted hash protects *low-entropy*
secrets (passwords) against guessing after a database leak. A 256-bit
random secret cannot be guessed at any hash speed, so argon2 would add
tens of milliseconds and 64 MiB per request (a denial-of-service lever)
and buy nothing. The stored digest is compared with :func:`hmac.compare_digest`.

Keys have scopes (permission patterns they are limited to), roles, an
optional expiry, a last-used time (written at most once a minute per key),
rotation with an overlap (the old key keeps working for a while, then
expires) and revocation. Records are cached for ``cache_ttl`` seconds, so
a revocation made by another process takes effect within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from lms_shared.auth._errors import InvalidApiKey
from lms_shared.auth._principal import DEFAULT_POLICY, Principal
from lms_shared.auth._rbac import Policy, permission_pattern
from lms_shared.caching import BoundedCache
from lms_shared.clock import Clock
from lms_shared.errors import Conflict, NotFound
from lms_shared.models import ModelValidationError

__all__ = ["ApiKey", "ApiKeyStore", "ApiKeys", "IssuedApiKey", "MemoryApiKeyStore", "hash_api_key"]

_PREFIX = re.compile(r"[a-z]{2,16}")
_KEY = re.compile(r"([a-z]{2,16})_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """A stored API key: everything but the secret.

    Attributes:
        id: the public key id (16 hex digits).
        name: what it is for (``ci-deploy``).
        owner: the subject it acts for (a user or service id).
        hash: SHA-256 of the whole key, hex.
        created_at: when it was made.
        tenant: the organization it belongs to, if any.
        roles: roles it carries.
        scopes: permission patterns it is limited to (``None``: its roles only).
        expires_at: when it stops working, if ever.
        revoked_at: when it was revoked, if it was.
        last_used_at: when it was last accepted (to the minute).
        replaced_by: the id of the key that rotated it out.
    """

    id: str
    name: str
    owner: str
    hash: str
    created_at: datetime
    tenant: str | None = None
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    replaced_by: str | None = None

    def active(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A new key: the secret to show once, and its stored record."""

    secret: str
    key: ApiKey


class ApiKeyStore(Protocol):
    """Where API key records live (memory, or the service's database)."""

    async def add(self, key: ApiKey) -> None:
        """Store a new record.

        Raises:
            Conflict: the id or the digest is taken.
        """
        ...

    async def get(self, key_id: str) -> ApiKey | None:
        """The record with this id, or ``None``."""
        ...

    async def list(self, *, owner: str | None = None) -> list[ApiKey]:
        """Every record (of one owner), oldest first."""
        ...

    async def update(self, key: ApiKey) -> None:
        """Replace the record with the same id."""
        ...

    async def touch(self, key_id: str, at: datetime) -> None:
        """Set ``last_used_at`` of one record."""
        ...


class MemoryApiKeyStore:
    """API key records in a dict: tests and single-process tools."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}

    async def add(self, key: ApiKey) -> None:
        """Store a new record.

        Raises:
            Conflict: the id or digest is taken.
        """
        if key.id in self._keys or any(k.hash == key.hash for k in self._keys.values()):
            raise Conflict(f"API key {key.id} already exists")
        self._keys[key.id] = key

    async def get(self, key_id: str) -> ApiKey | None:
        """The record with this id, or ``None``."""
        return self._keys.get(key_id)

    async def list(self, *, owner: str | None = None) -> list[ApiKey]:
        """Every record (of one owner), oldest first."""
        keys = [k for k in self._keys.values() if owner is None or k.owner == owner]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def update(self, key: ApiKey) -> None:
        """Replace the record with the same id."""
        self._keys[key.id] = key

    async def touch(self, key_id: str, at: datetime) -> None:
        """Set ``last_used_at`` of one record."""
        key = self._keys.get(key_id)
        if key is not None:
            self._keys[key_id] = replace(key, last_used_at=at)


def hash_api_key(secret: str) -> str:
    """The stored digest of a key: SHA-256 of the whole key, hex."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class ApiKeys:
    """Creates, checks, rotates and revokes API keys.

    Args:
        store: where records live.
        clock: creation, expiry and last-used times; the cache's age.
        prefix: the first part of every key (``lms``).
        policy: the roles table of the principals built.
        cache_ttl: seconds a checked record is reused without the store.
        touch_interval: least seconds between two ``last_used_at`` writes.
        cache_size: records kept in the cache.

    Raises:
        ValueError: a malformed prefix, or a negative ``cache_ttl`` or ``cache_size``.
    """

    def __init__(
        self,
        store: ApiKeyStore,
        *,
        clock: Clock,
        prefix: str = "lms",
        policy: Policy = DEFAULT_POLICY,
        cache_ttl: float = 5.0,
        touch_interval: float = 60.0,
        cache_size: int = 1000,
    ) -> None:
        if _PREFIX.fullmatch(prefix) is None:
            raise ValueError(f"an API key prefix is 2-16 lower-case letters, got {prefix!r}")
        self.store = store
        self.clock = clock
        self.prefix = prefix
        self.policy = policy
        self.cache_ttl = cache_ttl
        self.touch_interval = touch_interval
        self.cache_size = cache_size
        self._cache: BoundedCache[str, tuple[ApiKey, Principal]] = BoundedCache(
            cache_size, ttl=cache_ttl, clock=clock
        )

    async def create(
        self,
        name: str,
        *,
        owner: str,
        roles: Iterable[str] = (),
        scopes: Iterable[str] | None = None,
        tenant: str | None = None,
        expires_in: timedelta | None = None,
    ) -> IssuedApiKey:
        """Make a key; the returned ``secret`` is the only time it is seen.

        Raises:
            ValueError: an empty name or owner.
            ModelValidationError: a malformed scope (422, one entry per scope,
                pointing at ``#/scopes/<index>``).
        """
        if not name or not owner:
            raise ValueError("an API key needs a name and an owner")
        scope_set = None if scopes is None else frozenset(_scopes(scopes))
        now = self.clock.now()
        key_id = secrets.token_hex(8)
        secret = f"{self.prefix}_{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(
            id=key_id,
            name=name,
            owner=owner,
            hash=hash_api_key(secret),
            created_at=now,
            tenant=tenant,
            roles=frozenset(roles),
            scopes=scope_set,
            expires_at=now + expires_in if expires_in is not None else None,
        )
        await self.store.add(record)
        return IssuedApiKey(secret, record)

    async def authenticate(self, presented: str) -> Principal:
        """The principal of a valid key.

        Raises:
            InvalidApiKey: malformed, unknown, wrong secret, expired or revoked (401).
        """
        match = _KEY.fullmatch(presented)
        if match is None or match[1] != self.prefix:
            raise InvalidApiKey("the API key is malformed")
        key_id = match[2]
        digest = hash_api_key(presented)
        cached = self._cache.get(key_id)
        if cached is not None:
            record, principal = cached
        else:
            found = await self.store.get(key_id)
            if found is None:
                raise InvalidApiKey("the API key is not valid")
            record, principal = found, self._principal(found)
            self._cache.set(key_id, (record, principal))
        if not hmac.compare_digest(record.hash, digest):
            raise InvalidApiKey("the API key is not valid")
        now = self.clock.now()
        if record.revoked_at is not None:
            raise InvalidApiKey("the API key has been revoked")
        if record.expires_at is not None and now >= record.expires_at:
            raise InvalidApiKey("the API key has expired")
        last = record.last_used_at
        if last is None or (now - last).total_seconds() >= self.touch_interval:
            await self.store.touch(key_id, now)
            record = replace(record, last_used_at=now)
            self._cache.set(key_id, (record, principal))
        return principal

    def _principal(self, record: ApiKey) -> Principal:
        return Principal(
            subject=record.owner,
            kind="api_key",
            tenant=record.tenant,
            roles=record.roles,
            scopes=record.scopes,
            name=record.name,
            credential_id=record.id,
            expires_at=record.expires_at,
            policy=self.policy,
        )

    async def _require(self, key_id: str) -> ApiKey:
        record = await self.store.get(key_id)
        if record is None:
            raise NotFound(f"API key {key_id} does not exist")
        return record

    async def rotate(
        self, key_id: str, *, overlap: timedelta = timedelta(hours=24)
    ) -> IssuedApiKey:
        """Replace a key: a new one now, the old one expiring after ``overlap``.

        The new key has the same name, owner, roles, scopes and lifetime.

        Raises:
            NotFound: no such key.
            ValueError: the key is already revoked or expired.
        """
        old = await self._require(key_id)
        now = self.clock.now()
        if not old.active(now):
            raise ValueError(f"API key {key_id} is no longer active")
        lifetime = None if old.expires_at is None else old.expires_at - old.created_at
        new = await self.create(
            old.name,
            owner=old.owner,
            roles=old.roles,
            scopes=old.scopes,
            tenant=old.tenant,
            expires_in=lifetime,
        )
        ends = now + overlap
        if old.expires_at is not None and old.expires_at < ends:
            ends = old.expires_at
        await self.store.update(replace(old, expires_at=ends, replaced_by=new.key.id))
        self._cache.pop(key_id)
        return new

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key now (idempotent).

        Raises:
            NotFound: no such key.
        """
        record = await self._require(key_id)
        if record.revoked_at is None:
            record = replace(record, revoked_at=self.clock.now())
            await self.store.update(record)
        self._cache.pop(key_id)
        return record

    async def list(
        self, *, owner: str | None = None, include_inactive: bool = False
    ) -> list[ApiKey]:
        """Stored keys (of one owner), oldest first; active ones unless asked."""
        keys = await self.store.list(owner=owner)
        if include_inactive:
            return keys
        now = self.clock.now()
        return [k for k in keys if k.active(now)]


def _scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes as permission patterns; every malformed one named (422)."""
    checked: list[str] = []
    problems: list[dict[str, str]] = []
    for index, scope in enumerate(scopes):
        try:
            checked.append(permission_pattern(scope))
        except ValueError as exc:
            problems.append(
                {"pointer": f"#/scopes/{index}", "detail": str(exc), "type": "value_error"}
            )
    if problems:
        detail = "; ".join(
            f"scope {p['pointer'].rsplit('/', 1)[1]}: {p['detail']}" for p in problems
        )
        raise ModelValidationError(problems, detail=detail)
    return checked
