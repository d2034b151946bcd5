"""Tenant scoping, soft delete and bulk upsert (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from tests.db.db_models import Course, Item, Lesson

from lms_shared.db import Database, TenantScopeError, current_tenant, tenant_context, upsert
from lms_shared.testing import ManualClock


async def seed(db: Database) -> None:
    for tenant, first in (("acme", 1), ("globex", 100)):
        async with db.transaction(tenant=tenant) as tx:
            tx.add_all(
                [
                    Course(id=first, title=f"{tenant} rust"),
                    Course(id=first + 1, title=f"{tenant} go"),
                ]
            )
            await tx.flush()
            tx.add(Lesson(id=first, course_id=first, title=f"{tenant} lesson"))


async def test_every_query_is_scoped_to_the_tenant(database: Database) -> None:
    await seed(database)
    async with database.transaction(tenant="acme", read_only=True) as tx:
        assert sorted(await tx.scalars(select(Course.id))) == [1, 2]
        # naming the other tenant explicitly does not escape
        assert list(await tx.scalars(select(Course).where(Course.tenant_id == "globex"))) == []
        assert await tx.get(Course, 100) is None
        # nor does a join, a subquery or a relationship load
        joined = select(Lesson.title).join(Course, Lesson.course_id == Course.id)
        assert list(await tx.scalars(joined)) == ["acme lesson"]
        inner = select(Course.id).where(Course.title.like("globex%")).scalar_subquery()
        assert list(await tx.scalars(select(Lesson).where(Lesson.course_id == inner))) == []
        courses = await tx.scalars(select(Course).options(selectinload(Course.lessons)))
        assert {c.title: [x.title for x in c.lessons] for c in courses} == {
            "acme rust": ["acme lesson"],
            "acme go": [],
        }
        count = select(func.count()).select_from(Course)
        assert await tx.scalar(count) == 2


async def test_updates_and_deletes_cannot_reach_another_tenant(database: Database) -> None:
    await seed(database)
    async with database.transaction(tenant="acme") as tx:
        await tx.execute(update(Course).where(Course.id == 100).values(title="hijacked"))
        await tx.execute(delete(Lesson).where(Lesson.id == 100))
        await tx.execute(update(Course).values(seats=1))
    async with database.transaction(all_tenants=True, read_only=True) as tx:
        rows = {c.id: (c.title, c.seats) for c in await tx.scalars(select(Course))}
        assert rows[100] == ("globex rust", 10)
        assert rows[1] == ("acme rust", 1)
        assert await tx.get(Lesson, 100) is not None


async def test_new_rows_get_the_tenant_and_cannot_name_another(database: Database) -> None:
    async with database.transaction(tenant="acme") as tx:
        tx.add(Course(id=1, title="mine"))
    async with database.transaction(all_tenants=True) as tx:
        mine = await tx.get(Course, 1)
        assert mine is not None
        assert mine.tenant_id == "acme"
    with pytest.raises(TenantScopeError) as caught:
        async with database.transaction(tenant="acme") as tx:
            tx.add(Course(id=2, title="theirs", tenant_id="globex"))
    assert caught.value.status == 403

    async def move_to_another_tenant(tx: AsyncSession) -> None:
        course = await tx.get(Course, 1)
        assert course is not None
        course.tenant_id = "globex"

    with pytest.raises(TenantScopeError):
        await database.run(move_to_another_tenant, tenant="acme")


async def test_without_a_tenant_tenant_owned_data_is_refused(database: Database) -> None:
    await seed(database)
    with pytest.raises(TenantScopeError, match="Course is tenant-owned"):
        async with database.transaction(read_only=True) as tx:
            await tx.scalars(select(Course))
    with pytest.raises(TenantScopeError, match="tenant"):
        async with database.transaction() as tx:
            tx.add(Course(id=5, title="orphan"))
    with pytest.raises(TenantScopeError, match="tenant_id"):
        async with database.transaction(all_tenants=True) as tx:
            tx.add(Course(id=5, title="orphan"))
    # plain models need no tenant; admin work may opt out per statement
    async with database.transaction() as tx:
        tx.add(Item(id=1, name="plain"))
        everyone = select(Course).execution_options(all_tenants=True)
        assert len(list(await tx.scalars(everyone))) == 4


async def test_the_tenant_context_scopes_transactions_opened_inside(database: Database) -> None:
    await seed(database)
    assert current_tenant() is None
    with tenant_context("globex"):
        assert current_tenant() == "globex"
        async with database.transaction(read_only=True) as tx:
            assert sorted(await tx.scalars(select(Course.id))) == [100, 101]
        async with database.transaction(tenant="acme", read_only=True) as tx:
            assert sorted(await tx.scalars(select(Course.id))) == [1, 2]  # explicit wins
    assert current_tenant() is None
    with pytest.raises(ValueError, match="non-empty"), tenant_context(""):
        pass


async def test_soft_deleted_rows_are_hidden_unless_asked_for(database: Database) -> None:
    await seed(database)
    clock = ManualClock()
    async with database.transaction(tenant="acme") as tx:
        course = await tx.get(Course, 1)
        assert course is not None
        assert not course.is_deleted
        course.soft_delete(clock.now())
    async with database.transaction(tenant="acme") as tx:
        assert await tx.get(Course, 1) is None
        assert sorted(await tx.scalars(select(Course.id))) == [2]
        with_deleted = select(Course).execution_options(include_deleted=True)
        deleted = {c.id: c for c in await tx.scalars(with_deleted)}
        assert deleted[1].deleted_at == datetime(2026, 1, 1, tzinfo=UTC)
        deleted[1].restore()
    async with database.transaction(tenant="acme", read_only=True) as tx:
        assert sorted(await tx.scalars(select(Course.id))) == [1, 2]
    with pytest.raises(ValueError, match="timezone-aware"):
        Course().soft_delete(datetime(2026, 1, 1))


async def test_upsert_inserts_and_updates_in_one_statement(database: Database) -> None:
    async with database.transaction() as tx:
        tx.add(Item(id=1, name="old", rank=1))
    async with database.transaction() as tx:
        given = await upsert(
            tx, Item, [{"id": 1, "name": "new", "rank": 5}, {"id": 2, "name": "two", "rank": 2}]
        )
        assert given == 2
    async with database.transaction() as tx:
        await upsert(tx, Item, [{"id": 1, "name": "newer", "rank": 9}], update=["name"])
        await upsert(tx, Item, [{"id": 2, "name": "ignored", "rank": 0}], update=[])
        assert await upsert(tx, Item, []) == 0
    async with database.transaction(read_only=True) as tx:
        rows = {i.id: (i.name, i.rank) for i in await tx.scalars(select(Item))}
    assert rows == {1: ("newer", 5), 2: ("two", 2)}


async def test_upsert_keeps_to_the_tenant_and_the_clock(database: Database) -> None:
    await seed(database)
    clock = ManualClock()
    database.clock = clock
    await clock.advance(3600)
    async with database.transaction(tenant="acme") as tx:
        rows = [
            {"id": 1, "title": "acme rust 2"},  # ours: updated
            {"id": 3, "title": "acme new"},  # new: gets our tenant
            {"id": 100, "title": "stolen"},  # globex's key: left alone
        ]
        await upsert(tx, Course, rows)
    async with database.transaction(all_tenants=True, read_only=True) as tx:
        got = {c.id: c for c in await tx.scalars(select(Course))}
    assert (got[1].title, got[1].tenant_id) == ("acme rust 2", "acme")
    assert (got[3].title, got[3].tenant_id) == ("acme new", "acme")
    assert (got[100].title, got[100].tenant_id) == ("globex rust", "globex")
    assert got[3].created_at == clock.now()
    assert got[1].updated_at == clock.now()
    with pytest.raises(TenantScopeError):
        async with database.transaction(tenant="acme") as tx:
            await upsert(tx, Course, [{"id": 9, "title": "x", "tenant_id": "globex"}])
    with pytest.raises(TenantScopeError):
        async with database.transaction() as tx:
            await upsert(tx, Course, [{"id": 9, "title": "x"}])


async def test_upsert_refuses_malformed_rows(database: Database) -> None:
    async with database.transaction() as tx:
        with pytest.raises(ValueError, match="same attributes"):
            await upsert(tx, Item, [{"id": 1, "name": "a"}, {"id": 2}])
        with pytest.raises(ValueError, match="no column attributes"):
            await upsert(tx, Item, [{"id": 1, "nope": "a"}])


async def test_raw_sql_is_outside_the_rules(database: Database) -> None:
    """Documented: text() bypasses the ORM rules, so scoping cannot see it."""
    await seed(database)
    async with database.transaction(tenant="acme", read_only=True) as tx:
        assert await tx.scalar(text("SELECT count(*) FROM courses")) == 4


async def test_statements_that_only_name_the_table_are_scoped_too(database: Database) -> None:
    """``select(func.count()).select_from(Model)`` selects no entity, only a FROM."""
    await seed(database)
    count = select(func.count()).select_from(Course)
    with pytest.raises(TenantScopeError, match="courses is tenant-owned"):
        async with database.transaction(read_only=True) as tx:
            await tx.scalar(count)
    async with database.transaction(all_tenants=True) as tx:
        course = await tx.get(Course, 1)
        assert course is not None
        course.soft_delete(ManualClock().now())
    async with database.transaction(all_tenants=True, read_only=True) as tx:
        assert await tx.scalar(count) == 3  # the soft-deleted row is left out
        everything = count.execution_options(include_deleted=True)
        assert await tx.scalar(everything) == 4
