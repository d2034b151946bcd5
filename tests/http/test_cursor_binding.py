"""A cursor pages only the listing that made it: same route, same sort, same caller.

Two listings with the same sort (``created_at,id``, like identity's
organizations and users) and a keyset cursor that fits both: before
cursors were sealed, one listing's cursor paged the other.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import orjson
import pytest
from fastapi import Depends, Request
from sqlalchemy import MetaData, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lms_shared import Service, create_service, load_settings
from lms_shared.auth import Principal
from lms_shared.db import Database, ListQuery, Model, QuerySpec
from lms_shared.http import Page, page_params, require
from lms_shared.http.query import list_query
from lms_shared.models import PageParams, encode_cursor, paginate
from lms_shared.models._paging import MAX_CURSOR_LENGTH, CursorSigner
from lms_shared.testing import FakeIdentity, service_client

SECRET = "kQ9-vT3x-Lp7w-Zr2m-Ny6c-Hb4s-Jd8f"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Base(Model, DeclarativeBase):
    """This module's tables."""


class Org(Base):
    __tablename__ = "cursor_orgs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column()


class Member(Base):
    __tablename__ = "cursor_members"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column()


ORGS = QuerySpec(Org, sorts=["created_at", "name"], default_sort="created_at")
MEMBERS = QuerySpec(Member, sorts=["created_at", "name"], default_sort="created_at")
Paging = Annotated[PageParams, Depends(page_params)]


@pytest.fixture
def database_metadata() -> MetaData:
    return Base.metadata


def build(database: Database, identity: FakeIdentity, **overrides: Any) -> Service:
    service = create_service(
        "identity", "1.0.0", settings=load_settings(**{"secret_key": SECRET, **overrides})
    )
    identity.install(service)
    v1 = service.api(1)

    @v1.get("/organizations")
    async def organizations(
        request: Request,
        paging: Paging,
        query: Annotated[ListQuery[Org], Depends(list_query(ORGS))],
        _: Principal = require(),
    ) -> Page[str]:
        async with database.transaction(read_only=True) as tx:
            rows, cursor = await query.page(tx, select(Org), paging)
        return Page[str].build([r.name for r in rows], cursor, request)

    @v1.get("/users")
    async def users(
        request: Request,
        paging: Paging,
        query: Annotated[ListQuery[Member], Depends(list_query(MEMBERS))],
        _: Principal = require(),
    ) -> Page[str]:
        async with database.transaction(read_only=True) as tx:
            rows, cursor = await query.page(tx, select(Member), paging)
        return Page[str].build([r.name for r in rows], cursor, request)

    @v1.get("/names")
    async def names(request: Request, paging: Paging) -> Page[str]:  # anonymous, in memory
        items, cursor = paginate([f"n{i}" for i in range(5)], paging, key=lambda n: n)
        return Page[str].build(items, cursor, request)

    @v1.get("/other-names")
    async def other_names(request: Request, paging: Paging) -> Page[str]:
        items, cursor = paginate([f"n{i}" for i in range(5)], paging, key=lambda n: n)
        return Page[str].build(items, cursor, request)

    service.include(v1)
    return service


@pytest.fixture
async def seeded(database: Database) -> Database:
    async with database.transaction() as tx:
        for i in range(6):
            when = T0 + timedelta(minutes=i)
            tx.add(Org(id=i + 1, name=f"org-{i}", created_at=when))
            tx.add(Member(id=i + 1, name=f"user-{i}", created_at=when))
    return database


@pytest.fixture
def identity() -> FakeIdentity:
    return FakeIdentity()


@pytest.fixture
async def client(seeded: Database, identity: FakeIdentity) -> AsyncIterator[httpx.AsyncClient]:
    async with service_client(build(seeded, identity)) as client:
        yield client


def admin(identity: FakeIdentity, subject: str = "ada", tenant: str | None = "t1") -> Any:
    return identity.headers(subject, roles=["admin"], tenant=tenant)


async def first_cursor(client: httpx.AsyncClient, url: str, headers: Any) -> str:
    response = await client.get(url, params={"limit": 2}, headers=headers)
    assert response.status_code == 200, response.text
    cursor = response.json()["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


def refused(response: httpx.Response) -> bool:
    return (
        response.status_code == 400
        and response.headers["content-type"] == "application/problem+json"
        and response.json()["code"] == "invalid-cursor"
    )


async def test_a_cursor_walks_its_own_listing(
    client: httpx.AsyncClient, identity: FakeIdentity
) -> None:
    headers = admin(identity)
    seen: list[str] = []
    url: str | None = "/v1/organizations?limit=4"
    while url:
        body = (await client.get(url, headers=headers)).json()
        seen.extend(body["items"])
        url = body["links"]["next"]
    assert seen == [f"org-{i}" for i in range(6)]


async def test_an_organizations_cursor_does_not_page_users(
    client: httpx.AsyncClient, identity: FakeIdentity
) -> None:
    headers = admin(identity)
    cursor = await first_cursor(client, "/v1/organizations", headers)
    same = await client.get("/v1/organizations", params={"cursor": cursor}, headers=headers)
    across = await client.get("/v1/users", params={"cursor": cursor}, headers=headers)
    assert same.status_code == 200
    assert same.json()["items"] == [f"org-{i}" for i in range(2, 6)]
    assert refused(across)
    assert "another listing" in across.json()["detail"]


async def test_a_cursor_is_bound_to_its_sort(
    client: httpx.AsyncClient, identity: FakeIdentity
) -> None:
    headers = admin(identity)
    by_name = (
        await client.get("/v1/organizations", params={"limit": 2, "sort": "name"}, headers=headers)
    ).json()["next_cursor"]
    same = await client.get(
        "/v1/organizations", params={"sort": "name", "cursor": by_name}, headers=headers
    )
    other = await client.get(
        "/v1/organizations", params={"sort": "-name", "cursor": by_name}, headers=headers
    )
    unsorted = await client.get("/v1/organizations", params={"cursor": by_name}, headers=headers)
    assert same.status_code == 200
    assert refused(other)
    assert refused(unsorted)


async def test_a_cursor_is_bound_to_its_caller(
    client: httpx.AsyncClient, identity: FakeIdentity
) -> None:
    cursor = await first_cursor(client, "/v1/organizations", admin(identity, "ada", "t1"))
    again = await client.get(
        "/v1/organizations", params={"cursor": cursor}, headers=admin(identity, "ada", "t1")
    )
    other_user = await client.get(
        "/v1/organizations", params={"cursor": cursor}, headers=admin(identity, "bob", "t1")
    )
    other_tenant = await client.get(
        "/v1/organizations", params={"cursor": cursor}, headers=admin(identity, "ada", "t2")
    )
    anonymous = (await client.get("/v1/names", params={"limit": 2})).json()["next_cursor"]
    signed_in = await client.get("/v1/names", params={"cursor": anonymous}, headers=admin(identity))
    assert again.status_code == 200  # a new token of the same caller: the same binding
    assert refused(other_user)
    assert refused(other_tenant)
    assert refused(signed_in)
    no_token = await client.get("/v1/organizations", params={"cursor": cursor})
    expired = await client.get(
        "/v1/organizations",
        params={"cursor": cursor},
        headers=identity.headers("ada", roles=["admin"], tenant="t1", ttl=-60),
    )
    assert refused(no_token)  # nobody's cursor: this one is ada's
    assert expired.status_code == 401  # the token is the problem: refresh, keep the cursor


async def test_in_memory_listings_are_bound_to_their_route(client: httpx.AsyncClient) -> None:
    cursor = (await client.get("/v1/names", params={"limit": 2})).json()["next_cursor"]
    mine = await client.get("/v1/names", params={"cursor": cursor})
    other = await client.get("/v1/other-names", params={"cursor": cursor})
    assert mine.json()["items"] == ["n2", "n3", "n4"]
    assert refused(other)


def edit_position(cursor: str, change: dict[str, Any]) -> str:
    payload, _, tag = cursor.rpartition(".")
    position = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{encode_cursor({**position, **change})}.{tag}"


async def test_an_edited_forged_or_old_cursor_is_refused(
    client: httpx.AsyncClient, identity: FakeIdentity
) -> None:
    headers = admin(identity)
    cursor = await first_cursor(client, "/v1/organizations", headers)
    payload, _, tag = cursor.rpartition(".")
    forged_tag = ("A" if tag[0] != "A" else "B") + tag[1:]
    candidates = {
        "edited position": edit_position(cursor, {"k": ["2026-03-01T00:00:00Z", 0]}),
        "edited tag": f"{payload}.{forged_tag}",
        "no tag": f"{payload}.",
        "unsigned (an earlier release)": payload,
        "unsigned made up": encode_cursor({"s": "created_at,id", "k": ["2026-01-01", 1]}),
        "tag not base64": f"{payload}.@@@@",
        "another key": CursorSigner(b"k" * 32).seal(
            {"s": "created_at,id", "k": ["2026-03-01T00:01:00Z", 2]}, b"[]"
        ),
    }
    for name, value in candidates.items():
        response = await client.get("/v1/organizations", params={"cursor": value}, headers=headers)
        assert refused(response), name
    too_long = await client.get(
        "/v1/organizations", params={"cursor": "a" * (MAX_CURSOR_LENGTH + 1)}, headers=headers
    )
    assert too_long.status_code == 422  # bounded by the parameter itself


async def test_cursors_survive_a_restart_with_the_same_secret(
    seeded: Database, identity: FakeIdentity
) -> None:
    service = build(seeded, identity)
    headers = admin(identity)  # after install: the token is for this service
    async with service_client(service) as first:
        cursor = await first_cursor(first, "/v1/organizations", headers)
    async with service_client(build(seeded, identity)) as second:
        again = await second.get("/v1/organizations", params={"cursor": cursor}, headers=headers)
    async with service_client(build(seeded, identity, secret_key="another-" + SECRET)) as rotated:
        refused_after = await rotated.get(
            "/v1/organizations", params={"cursor": cursor}, headers=headers
        )
    assert again.status_code == 200
    assert refused(refused_after)


def test_services_sharing_a_secret_do_not_share_cursor_keys() -> None:
    a = CursorSigner.from_secret(SECRET, service="courses")
    b = CursorSigner.from_secret(SECRET, service="grading")
    sealed = a.seal({"after": 1}, b"ctx")
    assert a.open(sealed, b"ctx") == {"after": 1}
    with pytest.raises(Exception, match="another listing"):
        b.open(sealed, b"ctx")
    with pytest.raises(ValueError, match="32 bytes"):
        CursorSigner(b"short")
