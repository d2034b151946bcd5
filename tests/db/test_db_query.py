"""Filtering, sorting and keyset paging from request parameters (both backends)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends
from sqlalchemy import select
from tests.db.db_models import Item

from lms_shared import ProblemError, create_service, load_settings
from lms_shared.db import Database, InvalidFilter, InvalidSort, ListQuery, QuerySpec
from lms_shared.http import Page, page_params
from lms_shared.http.query import list_query
from lms_shared.models import PageParams, decode_cursor, encode_cursor
from lms_shared.testing import service_client

SPEC = QuerySpec(
    Item,
    filters={
        "name": ["eq", "ne", "in", "contains", "icontains", "prefix"],
        "rank": ["eq", "lt", "lte", "gt", "gte", "in"],
        "score": ["null", "gte"],
        "when": ["gte", "lt", "null"],
    },
    sorts=["rank", "name", "id"],
    default_sort="-rank",
)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def seed(db: Database) -> None:
    async with db.transaction() as tx:
        tx.add_all(
            Item(
                id=i,
                name=name,
                rank=i % 3,
                score=None if i % 2 else i,
                when=T0 + timedelta(days=i),
            )
            for i, name in enumerate(
                ["alpha", "beta", "gamma", "50%_off", "a_b", "delta", "alphabet", "Ωmega"], start=1
            )
        )


async def ids(db: Database, params: list[tuple[str, str]]) -> list[int]:
    query = SPEC.parse(params)
    async with db.transaction(read_only=True) as tx:
        return [item.id for item in await tx.scalars(query.apply(select(Item)))]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("name", "beta")], [2]),
        ([("name[eq]", "beta")], [2]),
        ([("name[ne]", "beta"), ("rank", "2")], [5, 8]),
        ([("name[in]", "beta,delta,nope")], [2, 6]),
        ([("name[contains]", "lph")], [1, 7]),
        ([("name[icontains]", "ALPH")], [1, 7]),
        ([("name[prefix]", "a")], [1, 5, 7]),
        ([("name[prefix]", "A")], []),
        ([("name[contains]", "%")], [4]),
        ([("name[contains]", "_")], [4, 5]),
        ([("name[prefix]", "50%_")], [4]),
        ([("rank[gte]", "1"), ("rank[lt]", "2")], [1, 4, 7]),
        ([("rank[in]", "0,2")], [2, 3, 5, 6, 8]),
        ([("score[null]", "true")], [1, 3, 5, 7]),
        ([("score[null]", "false"), ("score[gte]", "6")], [6, 8]),
        ([("when[gte]", "2026-03-07T00:00:00Z")], [6, 7, 8]),
        ([("when[lt]", "2026-03-03T02:00:00+01:00")], [1, 2]),
        ([("name[contains]", "Ωm")], [8]),
    ],
)
async def test_filters(
    database: Database, params: list[tuple[str, str]], expected: list[int]
) -> None:
    await seed(database)
    assert sorted(await ids(database, params)) == expected


async def test_the_sort_order_is_applied_with_the_key_as_tiebreaker(database: Database) -> None:
    await seed(database)
    assert await ids(database, [("sort", "-rank,name")]) == [5, 2, 8, 4, 1, 7, 6, 3]
    # default order, -rank, then id ascending
    assert await ids(database, []) == [2, 5, 8, 1, 4, 7, 3, 6]
    assert SPEC.parse([("sort", "rank")]).signature == "rank,id"


@pytest.mark.parametrize(
    ("params", "parameter", "words"),
    [
        ([("secret", "x")], "secret", "cannot filter on 'secret'"),
        ([("name[regex]", "x")], "name[regex]", "operator 'regex' is not allowed"),
        ([("rank[contains]", "1")], "rank[contains]", "operator 'contains' is not allowed"),
        ([("rank", "one")], "rank", "valid integer"),
        ([("rank[in]", "1,x")], "rank[in]", "valid integer"),
        ([("when[gte]", "2026-03-07T00:00:00")], "when[gte]", "timezone"),
        ([("when[gte]", "yesterday")], "when[gte]", "datetime"),
        ([("score[null]", "maybe")], "score[null]", "boolean"),
        ([("name", "a\x00b")], "name", "NUL"),
        ([("name", "x" * 1001)], "name", "longer than"),
        ([("name[in]", ",".join("x" * 101))], "name[in]", "at most 100"),
        ([("name", "\ud800")], "name", "not valid text"),
    ],
)
def test_bad_filters_are_400_problems_naming_the_parameter(
    params: list[tuple[str, str]], parameter: str, words: str
) -> None:
    with pytest.raises(InvalidFilter) as caught:
        SPEC.parse(params)
    assert caught.value.status == 400
    assert caught.value.problem_code.slug == "invalid-filter"
    assert caught.value.parameter == parameter
    assert caught.value.extensions["parameter"] == parameter
    assert words in (caught.value.detail or "")


@pytest.mark.parametrize(
    ("sort", "field", "words"),
    [
        ("secret", "secret", "cannot sort on 'secret'"),
        ("-score", "score", "cannot sort on 'score'"),
        ("rank,-rank", "rank", "twice"),
        ("", "", "cannot sort on ''"),
    ],
)
def test_bad_sorts_are_400_problems(sort: str, field: str, words: str) -> None:
    with pytest.raises(InvalidSort) as caught:
        SPEC.parse([("sort", sort)])
    assert caught.value.problem_code.slug == "invalid-sort"
    assert caught.value.field == field
    assert words in (caught.value.detail or "")


def test_a_spec_refuses_what_it_cannot_do_safely() -> None:
    with pytest.raises(ValueError, match="no column attribute 'nope'"):
        QuerySpec(Item, filters={"nope": ["eq"]})
    with pytest.raises(ValueError, match="unknown operators"):
        QuerySpec(Item, filters={"name": ["like"]})
    with pytest.raises(ValueError, match="not text"):
        QuerySpec(Item, filters={"rank": ["contains"]})
    with pytest.raises(ValueError, match="nullable"):
        QuerySpec(Item, sorts=["score"])
    with pytest.raises(ValueError, match="default_sort"):
        QuerySpec(Item, sorts=["rank"], default_sort="name")


async def walk(db: Database, query: ListQuery[Item], limit: int) -> list[int]:
    seen: list[int] = []
    cursor: str | None = None
    async with db.transaction(read_only=True) as tx:
        while True:
            params = PageParams(limit=limit, cursor=decode_cursor(cursor) if cursor else None)
            rows, cursor = await query.page(tx, select(Item), params)
            assert len(rows) <= limit
            seen.extend(row.id for row in rows)
            if cursor is None:
                return seen


@pytest.mark.parametrize(
    ("sort", "limit"),
    [
        ("-rank,name", 1),
        ("-rank,name", 3),
        ("rank,-name", 2),
        ("name", 3),
        ("-id", 50),
        ("-rank", 1),
    ],
)
async def test_keyset_pages_walk_every_row_once_in_order(
    database: Database, sort: str, limit: int
) -> None:
    await seed(database)
    query = SPEC.parse([("sort", sort)])
    assert await walk(database, query, limit) == await ids(database, [("sort", sort)])


async def test_keyset_pages_respect_filters_and_rows_added_meanwhile(database: Database) -> None:
    await seed(database)
    query = SPEC.parse([("sort", "name"), ("rank[gte]", "1")])
    async with database.transaction(read_only=True) as tx:
        first, cursor = await query.page(tx, select(Item), PageParams(limit=2))
    assert [i.name for i in first] == ["50%_off", "a_b"]
    async with database.transaction() as tx:
        tx.add_all([Item(id=20, name="0 before", rank=1), Item(id=21, name="zz after", rank=1)])
    assert cursor is not None
    async with database.transaction(read_only=True) as tx:
        rest, _ = await query.page(
            tx, select(Item), PageParams(limit=50, cursor=decode_cursor(cursor))
        )
    assert [i.name for i in rest] == ["alpha", "alphabet", "beta", "zz after", "Ωmega"]


@pytest.mark.parametrize(
    "cursor",
    [
        {"s": "name,id", "k": ["a", 1]},  # another sort order
        {"s": "-rank,id", "k": [1]},  # too few keys
        {"s": "-rank,id", "k": "nope"},
        {"s": "-rank,id", "k": ["one", 1]},  # not an integer
        {"k": [1, 1]},
        {},
    ],
)
async def test_a_cursor_that_does_not_fit_is_invalid(
    database: Database, cursor: dict[str, Any]
) -> None:
    with pytest.raises(ProblemError) as caught:
        async with database.transaction(read_only=True) as tx:
            await SPEC.parse([]).page(tx, select(Item), PageParams(cursor=cursor))
    assert caught.value.problem_code.slug == "invalid-cursor"
    assert caught.value.status == 400


@pytest.fixture
async def api(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A service with a list endpoint on the per-test database."""
    service = create_service("catalog", "1.0.0", settings=load_settings())
    v1 = service.api(1)

    @v1.get("/items")
    async def list_items(
        paging: Annotated[PageParams, Depends(page_params)],
        query: Annotated[ListQuery[Item], Depends(list_query(SPEC))],
    ) -> Page[dict[str, Any]]:
        async with database.transaction(read_only=True) as tx:
            rows, cursor = await query.page(tx, select(Item), paging)
        return Page[dict[str, Any]](
            items=[{"id": r.id, "name": r.name} for r in rows],
            next_cursor=cursor,
            links={"self": "/v1/items"},
        )

    service.include(v1)
    await seed(database)
    async with service_client(service) as client:
        yield client


async def test_over_http_a_list_endpoint_filters_sorts_and_pages(api: httpx.AsyncClient) -> None:
    first = await api.get("/v1/items", params={"sort": "name", "limit": 3, "rank[lte]": 1})
    assert first.status_code == 200, first.text
    body = first.json()
    assert [i["name"] for i in body["items"]] == ["50%_off", "alpha", "alphabet"]
    second = await api.get(
        "/v1/items",
        params={"sort": "name", "limit": 3, "rank[lte]": 1, "cursor": body["next_cursor"]},
    )
    assert [i["name"] for i in second.json()["items"]] == ["delta", "gamma"]
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "code", "named"),
    [
        ({"password": "x"}, "invalid-filter", ("parameter", "password")),
        ({"name[regex]": ".*"}, "invalid-filter", ("parameter", "name[regex]")),
        ({"sort": "secret"}, "invalid-sort", ("field", "secret")),
        ({"cursor": "not-a-cursor!"}, "invalid-cursor", None),
        ({"cursor": encode_cursor({"s": "other", "k": []})}, "invalid-cursor", None),
    ],
)
async def test_over_http_bad_parameters_are_400_problems(
    api: httpx.AsyncClient, params: dict[str, str], code: str, named: tuple[str, str] | None
) -> None:
    response = await api.get("/v1/items", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    if named is not None:
        assert problem[named[0]] == named[1]
        assert named[1] in problem["detail"]
