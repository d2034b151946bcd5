"""Consistency patterns: ETag/If-Match, versioned updates, idempotency stores.

The store contract runs on every backend: memory, SQLite and PostgreSQL (the
last skips without a server, and fails instead under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lms_shared import NotFound
from lms_shared.db import SqlIdempotencyStore, idempotency_table, versioned_update
from lms_shared.http import check_if_match, etag
from lms_shared.http.conditional import parse_etags
from lms_shared.http.idempotency import fingerprint_body
from lms_shared.models import (
    IdempotencyInFlight,
    IdempotencyKeyReused,
    IdempotencyStore,
    MemoryIdempotencyStore,
    PreconditionRequired,
    StaleVersion,
)
from lms_shared.models.idempotency import Claim, StoredResponse

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
LEASE = timedelta(seconds=60)
TTL = timedelta(hours=24)
RESPONSE = StoredResponse(
    201, (("content-type", "application/json"), ("location", "/v1/x/1")), b'{"id":1}\x00\xff'
)
BACKENDS = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


# --- ETag / If-Match -------------------------------------------------------------


def test_etag_and_parsing() -> None:
    assert etag(7) == '"7"'
    assert parse_etags("*") is None
    assert parse_etags(' "1", W/"2" ,"3"') == ['"1"', 'W/"2"', '"3"']


@pytest.mark.parametrize("header", ['"3"', '"2", "3"', "*", ' "3" '])
def test_if_match_that_matches(header: str) -> None:
    check_if_match(header, 3)


@pytest.mark.parametrize("header", ['"2"', 'W/"3"', '"2", "4"'])
def test_stale_if_match_is_a_412_with_the_current_etag(header: str) -> None:
    with pytest.raises(StaleVersion) as caught:
        check_if_match(header, 3)
    assert caught.value.status == 412
    assert caught.value.headers == {"ETag": '"3"'}
    assert caught.value.current == 3


def test_missing_if_match_is_a_428_unless_optional() -> None:
    for missing in (None, "", "  "):
        with pytest.raises(PreconditionRequired) as caught:
            check_if_match(missing, 3)
        assert caught.value.status == 428
        check_if_match(missing, 3, required=False)


# --- databases ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'models.sqlite3'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    engine = create_async_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def courses(engine: AsyncEngine) -> AsyncIterator[Table]:
    metadata = MetaData()
    table = Table(
        f"courses_{secrets.token_hex(4)}",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("version", Integer, nullable=False),
        Column("title", String(200), nullable=False),
    )
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(insert(table).values(id=1, version=1, title="Statistics"))
    try:
        yield table
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)


async def test_versioned_update_bumps_and_refuses_stale_writes(
    engine: AsyncEngine, courses: Table
) -> None:
    async with engine.begin() as conn:
        assert await versioned_update(conn, courses, {"id": 1}, 1, {"title": "Stats I"}) == 2
    async with engine.begin() as conn:
        with pytest.raises(StaleVersion) as caught:
            await versioned_update(conn, courses, {"id": 1}, 1, {"title": "lost update"})
        assert caught.value.current == 2
        with pytest.raises(NotFound):
            await versioned_update(conn, courses, {"id": 9}, 1, {"title": "x"})
    async with engine.connect() as conn:
        row = (await conn.execute(select(courses))).one()
    assert (row.version, row.title) == (2, "Stats I")


async def test_concurrent_writers_on_one_version_only_one_wins(
    engine: AsyncEngine, courses: Table
) -> None:
    async def write(title: str) -> str:
        try:
            async with engine.begin() as conn:
                await versioned_update(conn, courses, {"id": 1}, 1, {"title": title})
            return "won"
        except StaleVersion:
            return "stale"

    outcomes = await asyncio.gather(*(write(f"title {i}") for i in range(4)))
    assert sorted(outcomes) == ["stale", "stale", "stale", "won"]


# --- the idempotency store contract -----------------------------------------------


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdempotencyStore]:
    if request.param == "memory":
        yield MemoryIdempotencyStore()
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'idempotency.sqlite3'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    engine = create_async_engine(url)
    metadata = MetaData()
    table = idempotency_table(metadata, name=f"idem_{secrets.token_hex(4)}")
    sql = SqlIdempotencyStore(engine, table=table)
    await sql.create_table()
    await sql.create_table()  # idempotent
    try:
        yield sql
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        await engine.dispose()


async def claim(store: IdempotencyStore, fp: str = "fp-1", *, at: datetime = NOW, key: str = "k1"):  # type: ignore[no-untyped-def]
    return await store.claim("POST /v1/x", key, fp, now=at, lease=LEASE)


async def test_first_claim_runs_and_retries_replay(store: IdempotencyStore) -> None:
    first = await claim(store)
    assert isinstance(first, Claim)
    assert await store.complete(first, RESPONSE, now=NOW, ttl=TTL)
    again = await claim(store, at=NOW + timedelta(hours=1))
    assert again == RESPONSE


async def test_same_key_other_body_is_refused(store: IdempotencyStore) -> None:
    first = await claim(store)
    assert isinstance(first, Claim)
    with pytest.raises(IdempotencyKeyReused) as caught:
        await claim(store, "fp-2")
    assert caught.value.status == 422
    await store.complete(first, RESPONSE, now=NOW, ttl=TTL)
    with pytest.raises(IdempotencyKeyReused):
        await claim(store, "fp-2")


async def test_a_running_request_makes_retries_wait(store: IdempotencyStore) -> None:
    assert isinstance(await claim(store), Claim)
    with pytest.raises(IdempotencyInFlight) as caught:
        await claim(store, at=NOW + timedelta(seconds=10))
    assert caught.value.status == 409
    assert caught.value.headers == {"Retry-After": "51"}


async def test_a_released_claim_lets_the_retry_run(store: IdempotencyStore) -> None:
    first = await claim(store)
    assert isinstance(first, Claim)
    await store.release(first)
    second = await claim(store, "fp-2")
    assert isinstance(second, Claim)
    await store.release(first)  # a stale release does not drop the new claim
    with pytest.raises(IdempotencyKeyReused):
        await claim(store, "fp-3")


async def test_a_dead_claim_is_taken_over_after_its_lease(store: IdempotencyStore) -> None:
    first = await claim(store)
    assert isinstance(first, Claim)
    later = NOW + LEASE + timedelta(seconds=1)
    second = await claim(store, at=later)
    assert isinstance(second, Claim)
    assert second.token != first.token
    assert not await store.complete(first, RESPONSE, now=later, ttl=TTL)
    assert await store.complete(second, RESPONSE, now=later, ttl=TTL)
    assert await claim(store, at=later) == RESPONSE


async def test_responses_expire_and_purge(store: IdempotencyStore) -> None:
    first = await claim(store)
    assert isinstance(first, Claim)
    await store.complete(first, RESPONSE, now=NOW, ttl=TTL)
    other = await claim(store, key="k2")
    assert isinstance(other, Claim)
    assert await store.purge(NOW + timedelta(hours=1)) == 1  # k2's lease ran out
    expired = NOW + TTL + timedelta(seconds=1)
    assert isinstance(await claim(store, "fp-new", at=expired), Claim)
    assert await store.purge(expired + LEASE) == 1
    assert await store.purge(expired + LEASE) == 0


async def test_keys_are_scoped(store: IdempotencyStore) -> None:
    assert isinstance(await store.claim("POST /v1/a", "k", "fp", now=NOW, lease=LEASE), Claim)
    assert isinstance(await store.claim("POST /v1/b", "k", "other", now=NOW, lease=LEASE), Claim)


async def test_concurrent_first_requests_claim_once(store: IdempotencyStore) -> None:
    async def attempt() -> str:
        try:
            return type(await claim(store)).__name__
        except IdempotencyInFlight:
            return "in flight"

    outcomes = await asyncio.gather(*(attempt() for _ in range(5)))
    assert sorted(outcomes) == ["Claim", "in flight", "in flight", "in flight", "in flight"]


def test_fingerprints_ignore_json_formatting() -> None:
    assert fingerprint_body(b'{"a": 1, "b": [1, 2]}') == fingerprint_body(b'{"b":[1,2],"a":1}')
    assert fingerprint_body(b'{"a": 1}') != fingerprint_body(b'{"a": 2}')
    assert fingerprint_body(b"not json") != fingerprint_body(b"not json!")
    assert fingerprint_body(b"") == fingerprint_body(b"")


def test_sql_store_reads_its_engine_lazily() -> None:
    class Holder:
        def __init__(self) -> None:
            self.reads = 0

        @property
        def engine(self) -> AsyncEngine:
            self.reads += 1
            return create_async_engine("sqlite+aiosqlite:///unused.sqlite3")

    holder = Holder()
    sql = SqlIdempotencyStore(holder)
    assert holder.reads == 0
    assert sql.table.name == "lms_idempotency_keys"
    assert isinstance(sql, IdempotencyStore)
