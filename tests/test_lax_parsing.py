"""One spelling per value, one value per parameter (issue 10, item 11).

``limit=5_0`` meant 50 (Python integer syntax), upper-case, dash-less,
braced and ``urn:uuid:`` ids were accepted, and repeated parameters
behaved differently per parameter (``limit`` took the last,
``role=admin&role=student`` was ANDed and returned nothing). Now: canonical
ids and integers only, and a parameter given twice is a 400 naming it.
The same rule covers ``If-Match`` and ``Idempotency-Key``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import Depends
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tests.test_demo import bootstrap, platform_in_process

from lms_shared import create_service, load_settings
from lms_shared.db import InvalidFilter, InvalidSort, QuerySpec
from lms_shared.errors import BadRequest
from lms_shared.http import IfMatch, Precondition, check_if_match
from lms_shared.models import CanonicalInt, Id, canonical_type
from lms_shared.testing import service_client

ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
LAX_IDS = [
    ID.upper(),
    ID.replace("-", ""),
    "{" + ID + "}",
    "urn:uuid:" + ID,
    " " + ID,
    ID + "\n",
]
LAX_INTEGERS = ["5_0", "050", "+50", " 50", "50 ", "50.0", "1e3", "\u0665\u0660", "0x32", "50\n"]


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "rows"
    id: Mapped[UUID] = mapped_column(primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    when: Mapped[Any] = mapped_column(DateTime(timezone=True))


SPEC = QuerySpec(
    Row,
    filters={
        "id": {"eq", "in"},
        "rank": {"eq", "gte", "in"},
        "role": {"eq", "in"},
        "active": {"eq", "null"},
        "when": {"gte"},
    },
    sorts=["rank", "role"],
)


@pytest.mark.parametrize("text", LAX_IDS)
def test_ids_have_one_spelling(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(Id).validate_strings(text)
    assert caught.value.errors()[0]["type"] == "uuid_not_canonical"
    assert TypeAdapter(Id).validate_strings(ID) == UUID(ID)


@pytest.mark.parametrize("text", LAX_INTEGERS)
def test_integers_have_one_spelling(text: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(CanonicalInt).validate_strings(text)


def test_canonical_values_still_parse() -> None:
    assert TypeAdapter(CanonicalInt).validate_strings("50") == 50
    assert TypeAdapter(CanonicalInt).validate_strings("-3") == -3
    assert TypeAdapter(CanonicalInt).validate_python(50) == 50  # not text: the type decides
    assert TypeAdapter(canonical_type(bool)).validate_strings("false") is False
    assert canonical_type(str) is str


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        *[([("rank", text)], "rank") for text in LAX_INTEGERS],
        *[([("id", text)], "id") for text in LAX_IDS],
        ([("id[in]", f"{ID},{ID.upper()}")], "id[in]"),
        ([("rank[in]", "1,02")], "rank[in]"),
        ([("active", "True")], "active"),
        ([("active", "1")], "active"),
        ([("active[null]", "yes")], "active[null]"),
        ([("when[gte]", "1700000000")], "when[gte]"),
        ([("when[gte]", "2026-03-07")], "when[gte]"),
        ([("when[gte]", "2026-03-07 00:00:00Z")], "when[gte]"),
    ],
)
def test_filters_take_canonical_values_only(params: list[tuple[str, str]], parameter: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        SPEC.parse(params)
    assert caught.value.status == 400
    assert caught.value.parameter == parameter


def test_canonical_filter_values_are_accepted() -> None:
    query = SPEC.parse(
        [
            ("id", ID),
            ("rank[in]", "0,7,-3"),
            ("active[null]", "false"),
            ("when[gte]", "2026-03-07T00:00:00+02:00"),
        ]
    )
    assert [c.value for c in query.conditions][:2] == [UUID(ID), [0, 7, -3]]


@pytest.mark.parametrize(
    "params",
    [
        [("role", "admin"), ("role", "student")],  # was ANDed: an empty page
        [("rank[gte]", "1"), ("rank[gte]", "2")],
        [("role[in]", "admin"), ("role[in]", "student")],
    ],
)
def test_a_repeated_filter_is_a_400_naming_it(params: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidFilter) as caught:
        SPEC.parse(params)
    assert caught.value.parameter == params[0][0]
    assert "twice" in (caught.value.detail or "")


def test_a_repeated_plain_filter_points_to_in() -> None:
    with pytest.raises(InvalidFilter) as caught:
        SPEC.parse([("role", "admin"), ("role", "student")])
    assert "role[in]=a,b" in (caught.value.detail or "")


@pytest.mark.parametrize("key", ["limit", "cursor"])
def test_repeated_paging_parameters_are_a_400(key: str) -> None:
    with pytest.raises(BadRequest) as caught:
        SPEC.parse([(key, "1"), (key, "2")])
    assert caught.value.status == 400
    assert caught.value.extensions["parameter"] == key


def test_a_repeated_or_spaced_sort_is_a_400() -> None:
    with pytest.raises(InvalidSort, match="twice"):
        SPEC.parse([("sort", "rank"), ("sort", "role")])
    with pytest.raises(InvalidSort):
        SPEC.parse([("sort", "-rank, role")])
    assert SPEC.parse([("sort", "-rank,role")]).signature == "-rank,role,id"


# --- headers ---------------------------------------------------------------------


@pytest.mark.parametrize("header", ["3", "W/3", '*, "3"', '"3', '"3" "4"', '"3";x', ","])
def test_a_malformed_if_match_is_a_400_not_a_412(header: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_if_match(header, 3)
    assert caught.value.status == 400
    assert caught.value.extensions["parameter"] == "If-Match"


@pytest.mark.parametrize("header", ['"3"', ' "2" , "3" ', '"2",,"3"', "*", '"a,b", "3"'])
def test_well_formed_if_match_lists_still_match(header: str) -> None:
    check_if_match(header, 3)


IF_MATCH = IfMatch()


async def test_idempotency_and_if_match_over_http() -> None:
    service = create_service("courses", "1.0.0", settings=load_settings())

    @service.router.put("/v1/things/{thing_id}")
    async def put(thing_id: Id, precondition: Precondition = Depends(IF_MATCH)) -> dict[str, str]:
        precondition.check(3)
        return {"id": str(thing_id)}

    async with service_client(service) as client:
        ok = await client.put(f"/v1/things/{ID}", headers={"If-Match": '"3"'})
        malformed = await client.put(f"/v1/things/{ID}", headers={"If-Match": "3"})
        lax_ids = [
            await client.put(f"/v1/things/{text.strip()}", headers={"If-Match": '"3"'})
            for text in LAX_IDS[:4]
        ]
        document = (await client.get("/openapi.json")).json()
    assert ok.status_code == 200
    assert (malformed.status_code, malformed.json()["parameter"]) == (400, "If-Match")
    assert {r.status_code for r in lax_ids} == {422}
    assert lax_ids[0].json()["errors"][0]["parameter"] == "thing_id"
    (parameter,) = document["paths"]["/v1/things/{thing_id}"]["put"]["parameters"][:1]
    assert parameter["schema"]["pattern"].startswith("^[0-9a-f]{8}-")


# --- the example platform ------------------------------------------------------------


@pytest.fixture(autouse=True)
def _migrate_on_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_DATABASE_MIGRATE_ON_START", "true")


async def test_the_platform_answers_lax_listings_and_ids_with_400s() -> None:
    async with platform_in_process() as clients:
        identity = clients["identity"]
        organization, admin = await bootstrap(identity)

        async def get(url: str) -> httpx.Response:
            return await identity.get(url, headers=admin)

        both_roles = await get("/v1/users?role=admin&role=student")
        any_of = await get("/v1/users?role[in]=admin,student")
        lax_org = await get(f"/v1/users?organization_id={organization['id'].upper()}")
        upper = await get(f"/v1/organizations/{organization['id'].upper()}")
        braced = await get("/v1/organizations/{" + organization["id"] + "}")
        unknown = await get(f"/v1/organizations/{uuid4()}")
    assert (both_roles.status_code, both_roles.json()["parameter"]) == (400, "role")
    assert any_of.status_code == 200
    assert [u["email"] for u in any_of.json()["items"]] == ["root@nw.edu"]
    assert (lax_org.status_code, lax_org.json()["code"]) == (400, "invalid-filter")
    assert upper.status_code == braced.status_code == 422
    assert unknown.status_code == 404


async def test_paging_parameters_are_canonical_and_given_once() -> None:
    async with platform_in_process() as clients:
        identity = clients["identity"]
        _, admin = await bootstrap(identity)

        async def get(url: str) -> httpx.Response:
            return await identity.get(url, headers=admin)

        lax = {text: await get(f"/v1/organizations?limit={text}") for text in ("5_0", "050", "+5")}
        twice = await get("/v1/organizations?limit=1&limit=2")
        cursor_twice = await get("/v1/organizations?cursor=a&cursor=b")
        plain = await get("/v1/organizations?limit=50")
    assert {r.status_code for r in lax.values()} == {422}, {k: r.text for k, r in lax.items()}
    assert lax["5_0"].json()["errors"][0]["parameter"] == "limit"
    assert (twice.status_code, twice.json()["parameter"]) == (400, "limit")
    assert (cursor_twice.status_code, cursor_twice.json()["parameter"]) == (400, "cursor")
    assert plain.status_code == 200
