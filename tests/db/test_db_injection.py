"""SQL metacharacters in every filter value are data, never SQL (a property test)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from tests.db.db_models import Item

from lms_shared.db import Database, InvalidFilter, QuerySpec

SPEC = QuerySpec(
    Item,
    filters={"name": ["eq", "ne", "in", "contains", "icontains", "prefix", "lt", "gte"]},
    sorts=["name"],
)
METACHARACTERS = "'\";--/**/%_\\[]()=<>!|&^$*?.,`\t\n\r#@:"
ATTACKS = [
    "' OR '1'='1",
    "'; DROP TABLE items; --",
    "\\'; DELETE FROM items; --",
    "%' OR name LIKE '%",
    "1) OR (1=1",
    "name]=x&name[ne",
    '\' UNION SELECT id, name, rank, score, "when" FROM items --',
]
values = st.one_of(
    st.sampled_from(ATTACKS),
    st.text(alphabet=st.sampled_from(METACHARACTERS + "abcAB01 Ω"), min_size=1, max_size=30),
    st.text(
        alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
        min_size=1,
        max_size=20,
    ),
)


def expected(op: str, stored: list[str], value: str) -> set[str]:
    match op:
        case "eq":
            return {s for s in stored if s == value}
        case "ne":
            return {s for s in stored if s != value}
        case "contains":
            return {s for s in stored if value in s}
        case "prefix":
            return {s for s in stored if s.startswith(value)}
        case "in":
            return {s for s in stored if s in value.split(",")}
    raise AssertionError(op)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=values, op=st.sampled_from(["eq", "ne", "contains", "prefix", "in"]))
async def test_filter_values_are_bound_as_data(database: Database, value: str, op: str) -> None:
    stored = [value, value + "x", "x" + value, "plain", "it's"]
    async with database.transaction() as outer:
        savepoint = await outer.begin_nested()
        outer.add_all(Item(id=i, name=name) for i, name in enumerate(stored, start=1))
        await outer.flush()
        # the value round-trips as data
        first = await outer.get(Item, 1)
        assert first is not None
        assert first.name == value
        query = SPEC.parse([(f"name[{op}]", value)])
        names = set(await outer.scalars(query.apply(select(Item.name))))
        assert names == expected(op, stored, value)
        # nothing else happened: the table and its rows are all still there
        assert await outer.scalar(select(func.count()).select_from(Item)) == len(stored)
        await savepoint.rollback()


@pytest.mark.parametrize("attack", ATTACKS)
async def test_attacks_through_the_whole_stack_change_nothing(
    database: Database, attack: str
) -> None:
    async with database.transaction() as tx:
        tx.add(Item(id=1, name="safe"))
    for op in ("eq", "contains", "prefix", "in", "lt", "gte", "icontains", "ne"):
        query = SPEC.parse([(f"name[{op}]", attack), ("sort", "-name")])
        async with database.transaction(read_only=True) as tx:
            rows: list[Any] = list(await tx.scalars(query.apply(select(Item))))
        assert all(row.name == "safe" for row in rows)
    async with database.transaction(read_only=True) as tx:
        assert await tx.scalar(select(func.count()).select_from(Item)) == 1


def test_metacharacters_in_field_and_operator_names_are_refused() -> None:
    for key in ("name;drop", "name[eq];--", "name[eq] OR 1=1", "'name'", "name[[eq]]"):
        with pytest.raises(InvalidFilter):
            SPEC.parse([(key, "x")])
