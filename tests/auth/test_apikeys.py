"""API keys: the store contract on every backend, the manager, and over HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lms_shared import Conflict, NotFound, Service
from lms_shared.auth import (
    API_KEY_METADATA,
    ApiKey,
    ApiKeys,
    ApiKeyStore,
    DatabaseApiKeyStore,
    InvalidApiKey,
    MemoryApiKeyStore,
)
from lms_shared.models import ModelValidationError
from lms_shared.testing import FakeIdentity, ManualClock, service_client

from .conftest import ISSUER

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite+aiosqlite:///{tmp_path / 'keys.sqlite3'}"


@pytest.fixture
def database_metadata() -> object:
    return API_KEY_METADATA


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest) -> ApiKeyStore:
    if backend == "memory":
        return MemoryApiKeyStore()
    return DatabaseApiKeyStore(request.getfixturevalue("database"))


def record(key_id: str = "0123456789abcdef", **changes: object) -> ApiKey:
    values: dict[str, object] = {
        "id": key_id,
        "name": "ci",
        "owner": "ada",
        "hash": hashlib.sha256(key_id.encode()).hexdigest(),
        "created_at": T0,
        "roles": frozenset({"instructor"}),
        **changes,
    }
    return ApiKey(**values)  # type: ignore[arg-type]


# --- the store contract: memory, SQLite, PostgreSQL ----------------------------


async def test_store_round_trip(store: ApiKeyStore) -> None:
    full = record(
        tenant="northwind",
        scopes=frozenset({"course:*"}),
        expires_at=T0 + timedelta(days=30),
        last_used_at=T0 + timedelta(minutes=5),
    )
    await store.add(full)
    await store.add(record("fedcba9876543210", scopes=frozenset(), roles=frozenset()))
    assert await store.get(full.id) == full
    empty = await store.get("fedcba9876543210")
    assert empty is not None
    assert empty.scopes == frozenset()
    assert empty.roles == frozenset()
    assert await store.get("ffffffffffffffff") is None


async def test_store_refuses_duplicates(store: ApiKeyStore) -> None:
    await store.add(record())
    with pytest.raises(Conflict):
        await store.add(record())
    with pytest.raises(Conflict):
        await store.add(record("1111111111111111", hash=record().hash))


async def test_store_lists_oldest_first_and_by_owner(store: ApiKeyStore) -> None:
    await store.add(record("2222222222222222", created_at=T0 + timedelta(hours=1), owner="bob"))
    await store.add(record("1111111111111111"))
    await store.add(record("3333333333333333", created_at=T0 + timedelta(hours=2)))
    assert [k.id for k in await store.list()] == [
        "1111111111111111",
        "2222222222222222",
        "3333333333333333",
    ]
    assert [k.id for k in await store.list(owner="bob")] == ["2222222222222222"]


async def test_store_update_and_touch(store: ApiKeyStore) -> None:
    await store.add(record())
    changed = record(
        revoked_at=T0 + timedelta(days=1),
        expires_at=T0 + timedelta(days=2),
        replaced_by="ffffffffffffffff",
        scopes=None,
    )
    await store.update(changed)
    assert await store.get(changed.id) == changed
    await store.touch(changed.id, T0 + timedelta(days=3))
    touched = await store.get(changed.id)
    assert touched is not None
    assert touched.last_used_at == T0 + timedelta(days=3)
    await store.touch("ffffffffffffffff", T0)  # an unknown key: nothing happens


async def test_the_whole_lifecycle_on_every_store(store: ApiKeyStore) -> None:
    clock = ManualClock(start=T0)
    keys = ApiKeys(store, clock=clock)
    issued = await keys.create("ci", owner="ada", roles=["instructor"], scopes=["course:*"])
    who = await keys.authenticate(issued.secret)
    assert (who.kind, who.subject, who.credential_id) == ("api_key", "ada", issued.key.id)
    rotated = await keys.rotate(issued.key.id, overlap=timedelta(hours=1))
    await keys.authenticate(issued.secret)
    await keys.authenticate(rotated.secret)
    await clock.advance(3600)
    with pytest.raises(InvalidApiKey, match="expired"):
        await keys.authenticate(issued.secret)
    await keys.revoke(rotated.key.id)
    with pytest.raises(InvalidApiKey, match="revoked"):
        await keys.authenticate(rotated.secret)
    assert await keys.list() == []
    assert len(await keys.list(include_inactive=True)) == 2


# --- the manager -----------------------------------------------------------------


@pytest.fixture
def memory_keys(clock: ManualClock) -> ApiKeys:
    return ApiKeys(MemoryApiKeyStore(), clock=clock)


async def test_a_key_is_shown_once_and_stored_as_a_hash(memory_keys: ApiKeys) -> None:
    issued = await memory_keys.create("ci", owner="ada")
    prefix, key_id, secret = issued.secret.split("_", 2)
    assert (prefix, key_id) == ("lms", issued.key.id)
    assert len(key_id) == 16
    assert len(secret) == 43
    stored = await memory_keys.store.get(key_id)
    assert stored is not None
    assert stored.hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert secret not in repr(stored)


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "lms",
        "lms_0123456789abcdef",
        "lms_0123456789ABCDEF_" + "a" * 43,
        "lms_0123456789abcdef_" + "a" * 42,
        "lms_0123456789abcdef_" + "a" * 43 + " ",
        "xyz_0123456789abcdef_" + "a" * 43,
        "lms_0123456789abcdef_" + "a" * 42 + "!",
    ],
)
async def test_malformed_keys(memory_keys: ApiKeys, presented: str) -> None:
    with pytest.raises(InvalidApiKey, match="malformed"):
        await memory_keys.authenticate(presented)


async def test_wrong_secret_or_unknown_id(memory_keys: ApiKeys) -> None:
    issued = await memory_keys.create("ci", owner="ada")
    forged = issued.secret[:-4] + ("AAAA" if not issued.secret.endswith("AAAA") else "BBBB")
    with pytest.raises(InvalidApiKey, match="not valid"):
        await memory_keys.authenticate(forged)
    with pytest.raises(InvalidApiKey, match="not valid"):
        await memory_keys.authenticate("lms_ffffffffffffffff_" + "a" * 43)


async def test_expiry(memory_keys: ApiKeys, clock: ManualClock) -> None:
    issued = await memory_keys.create("ci", owner="ada", expires_in=timedelta(days=1))
    await clock.advance(86399)
    await memory_keys.authenticate(issued.secret)
    await clock.advance(1)
    with pytest.raises(InvalidApiKey, match="expired"):
        await memory_keys.authenticate(issued.secret)


async def test_last_used_is_written_at_most_once_a_minute(
    memory_keys: ApiKeys, clock: ManualClock
) -> None:
    issued = await memory_keys.create("ci", owner="ada")
    writes = 0
    store = memory_keys.store
    touch = store.touch

    async def counting(key_id: str, at: datetime) -> None:
        nonlocal writes
        writes += 1
        await touch(key_id, at)

    store.touch = counting  # type: ignore[method-assign]
    for _ in range(10):
        await memory_keys.authenticate(issued.secret)
        await clock.advance(5)
    assert writes == 1
    await clock.advance(60)
    await memory_keys.authenticate(issued.secret)
    assert writes == 2
    stored = await store.get(issued.key.id)
    assert stored is not None
    assert stored.last_used_at == clock.now()


async def test_rotation_overlap_and_lifetime(memory_keys: ApiKeys, clock: ManualClock) -> None:
    old = await memory_keys.create(
        "ci", owner="ada", scopes=["course:read"], expires_in=timedelta(days=90)
    )
    await clock.advance(86400)
    new = await memory_keys.rotate(old.key.id, overlap=timedelta(hours=2))
    assert new.key.expires_at == clock.now() + timedelta(days=90)
    assert (new.key.name, new.key.owner, new.key.scopes) == ("ci", "ada", {"course:read"})
    stored = await memory_keys.store.get(old.key.id)
    assert stored is not None
    assert stored.replaced_by == new.key.id
    assert stored.expires_at == clock.now() + timedelta(hours=2)
    await clock.advance(7200)
    with pytest.raises(InvalidApiKey, match="expired"):
        await memory_keys.authenticate(old.secret)
    with pytest.raises(ValueError, match="no longer active"):
        await memory_keys.rotate(old.key.id)
    with pytest.raises(NotFound):
        await memory_keys.rotate("ffffffffffffffff")
    with pytest.raises(NotFound):
        await memory_keys.revoke("ffffffffffffffff")


async def test_a_revocation_elsewhere_takes_effect_within_the_cache_ttl(
    clock: ManualClock,
) -> None:
    store = MemoryApiKeyStore()
    here = ApiKeys(store, clock=clock, cache_ttl=5)
    there = ApiKeys(store, clock=clock, cache_ttl=5)
    issued = await here.create("ci", owner="ada")
    await here.authenticate(issued.secret)
    await there.revoke(issued.key.id)
    await here.authenticate(issued.secret)  # still cached here
    await clock.advance(5)
    with pytest.raises(InvalidApiKey, match="revoked"):
        await here.authenticate(issued.secret)


async def test_arguments_are_checked(memory_keys: ApiKeys, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="name and an owner"):
        await memory_keys.create("", owner="ada")
    with pytest.raises(ModelValidationError, match="permission pattern"):
        await memory_keys.create("ci", owner="ada", scopes=["everything"])
    with pytest.raises(ValueError, match="prefix"):
        ApiKeys(MemoryApiKeyStore(), clock=clock, prefix="LMS")


# --- over HTTP ---------------------------------------------------------------------


async def test_api_keys_over_http(
    make_protected: Callable[..., Service], clock: ManualClock
) -> None:
    service = make_protected()
    FakeIdentity(issuer=ISSUER, clock=clock).install(service)
    keys = service.auth.use_api_keys(MemoryApiKeyStore())
    reader = await keys.create("reader", owner="ci", roles=["instructor"], scopes=["course:read"])
    async with service_client(service) as client:
        by_header = await client.get("/v1/courses/c1", headers={"x-api-key": reader.secret})
        by_scheme = await client.get(
            "/v1/courses/c1", headers={"authorization": f"ApiKey {reader.secret}"}
        )
        scoped_out = await client.post(
            "/v1/courses/c1/grades", headers={"x-api-key": reader.secret}
        )
        await keys.revoke(reader.key.id)
        revoked = await client.get("/v1/courses/c1", headers={"x-api-key": reader.secret})
        anonymous = await client.get("/v1/courses/c1")
    assert by_header.status_code == by_scheme.status_code == 200
    assert by_header.json() == {"subject": "ci", "kind": "api_key", "roles": ["instructor"]}
    assert scoped_out.status_code == 403
    assert revoked.status_code == 401
    assert revoked.json()["detail"] == "the API key has been revoked"
    assert revoked.headers["www-authenticate"] == (
        'Bearer realm="courses", error="invalid_token", '
        'error_description="the API key has been revoked", ApiKey realm="courses"'
    )
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="courses", ApiKey realm="courses"'


async def test_keys_in_the_services_own_database(
    make_protected: Callable[..., Service], tmp_path: Path
) -> None:
    service = make_protected(database_url=f"sqlite+aiosqlite:///{tmp_path / 'courses.sqlite3'}")
    keys = service.auth.use_api_keys(DatabaseApiKeyStore(service.db))
    async with service_client(service) as client:  # the auth component creates the table
        issued = await keys.create("ci", owner="deploy-bot", roles=["observer"])
        response = await client.get("/v1/courses/c1", headers={"x-api-key": issued.secret})
    assert response.status_code == 200
    assert response.json()["kind"] == "api_key"
