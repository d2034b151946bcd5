"""Collection envelope and opaque cursor pagination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import pytest
from fastapi import Depends, Request
from hypothesis import given
from hypothesis import strategies as st

from lms_shared import BadRequest, Service
from lms_shared.http import Page, page_params
from lms_shared.models import PageParams, decode_cursor, encode_cursor, paginate
from lms_shared.testing import service_client

NAMES = [f"course-{i:02d}" for i in range(7)]


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    service = make_service()

    @service.router.get("/v1/courses")
    async def list_courses(
        request: Request, params: Annotated[PageParams, Depends(page_params)]
    ) -> Page[str]:
        items, cursor = paginate(NAMES, params, key=lambda name: name)
        return Page[str].build(items, cursor, request)

    return service


async def test_walks_every_page_once(service: Service) -> None:
    seen: list[str] = []
    url: str | None = "/v1/courses?limit=3"
    pages = 0
    async with service_client(service) as client:
        while url:
            body = (await client.get(url)).json()
            seen.extend(body["items"])
            assert body["links"]["self"].startswith("/v1/courses?limit=3")  # relative: not the Host
            url = body["links"]["next"]
            pages += 1
    assert seen == NAMES
    assert pages == 3


async def test_last_page_has_no_next(service: Service) -> None:
    async with service_client(service) as client:
        body = (await client.get("/v1/courses?limit=50")).json()
    assert body["next_cursor"] is None
    assert body["links"]["next"] is None
    assert len(body["items"]) == 7


@pytest.mark.parametrize(
    "cursor",
    ["not-base64!!", encode_cursor({"before": 1})[:-3] + "%%%", "W10", "bm90IGpzb24", "x" * 1100],
    ids=["garbage", "truncated", "json-list", "not-json", "too-long"],
)
async def test_malformed_cursor_is_a_400_problem(service: Service, cursor: str) -> None:
    async with service_client(service) as client:
        response = await client.get("/v1/courses", params={"cursor": cursor})
    body = response.json()
    if cursor.startswith("xxxx"):
        assert response.status_code == 422  # bounded by the query parameter itself
        assert body["errors"][0]["parameter"] == "cursor"
    else:
        assert response.status_code == 400
        assert body["code"] == "invalid-cursor"
        assert body["type"] == "https://lms.example.org/problems/invalid-cursor"


async def test_cursor_of_the_wrong_shape_is_refused(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.get("/v1/courses", params={"cursor": encode_cursor({"x": 1})})
        mixed = await client.get("/v1/courses", params={"cursor": encode_cursor({"after": 3})})
    assert response.status_code == 400
    assert mixed.status_code == 400


@pytest.mark.parametrize("limit", ["0", "201", "many"])
async def test_limit_is_bounded(service: Service, limit: str) -> None:
    async with service_client(service) as client:
        response = await client.get("/v1/courses", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "limit"


@given(
    st.dictionaries(
        st.text(max_size=10),
        st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20), st.none()),
        max_size=4,
    )
)
def test_cursor_round_trips(position: dict[str, object]) -> None:
    assert decode_cursor(encode_cursor(position)) == position


def test_decode_cursor_raises_the_typed_error() -> None:
    with pytest.raises(BadRequest) as info:
        decode_cursor("@@@")
    assert info.value.problem_code.slug == "invalid-cursor"


def test_page_schema_is_the_envelope() -> None:
    schema = Page[int].model_json_schema()
    assert set(schema["properties"]) == {"items", "next_cursor", "links"}
