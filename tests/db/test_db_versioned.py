"""versioned_update on an ORM model as on a Core table, on SQLite and PostgreSQL.

Given the model and a session of ``service.db``, the UPDATE obeys the
session's tenant and soft-delete rules, and ``updated_at`` moves to the
service clock's now, as an ORM flush does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lms_shared.db import (
    Database,
    DatabaseConfig,
    Model,
    SoftDeleteMixin,
    TenantMixin,
    TimestampMixin,
    versioned_update,
)
from lms_shared.errors import NotFound
from lms_shared.models import StaleVersion
from lms_shared.testing import ManualClock, rollback_database

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class Base(Model, DeclarativeBase):
    """This module's own tables."""


class Page(Base, TenantMixin, SoftDeleteMixin, TimestampMixin):
    """A versioned, tenant-owned, soft-deletable, timestamped row."""

    __tablename__ = "versioned_pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column("page_title", String(200))  # attribute != column
    version: Mapped[int] = mapped_column(default=1)


@pytest.fixture
def clock() -> ManualClock:
    """The service clock, starting at T0."""
    return ManualClock(T0)


@pytest.fixture
async def db(database_url: str, clock: ManualClock) -> AsyncIterator[Database]:
    """A database with the service clock, rolled back after the test."""
    database = Database(DatabaseConfig.for_url(database_url, service="versioned"), clock=clock)
    try:
        async with rollback_database(database, metadata=Base.metadata):
            async with database.transaction(tenant="acme") as tx:
                tx.add(Page(id=1, title="Statistics"))
                tx.add(Page(id=2, title="Retired"))
            async with database.transaction(tenant="globex") as tx:
                tx.add(Page(id=3, title="Theirs"))
            yield database
    finally:
        await database.stop()


async def test_an_orm_model_updates_bumps_and_stamps_from_the_service_clock(
    db: Database, clock: ManualClock
) -> None:
    await clock.advance(60)
    async with db.transaction(tenant="acme") as tx:
        loaded = await tx.get_one(Page, 1)
        assert await versioned_update(tx, Page, {"id": 1}, 1, {"title": "Statistics I"}) == 2
        assert (loaded.title, loaded.version) == ("Statistics I", 2)  # the session sees it
    async with db.transaction(tenant="acme", read_only=True) as tx:
        page = (await tx.scalars(select(Page).where(Page.id == 1))).one()
    assert (page.title, page.version) == ("Statistics I", 2)
    assert page.created_at == T0
    assert page.updated_at == T0 + timedelta(seconds=60)


async def test_stale_missing_other_tenants_and_deleted_rows(db: Database) -> None:
    async with db.transaction(tenant="acme") as tx:
        assert await versioned_update(tx, Page, {"id": 1}, 1, {"title": "first"}) == 2
    async with db.transaction(tenant="acme") as tx:
        with pytest.raises(StaleVersion) as caught:
            await versioned_update(tx, Page, {"id": 1}, 1, {"title": "lost update"})
        assert caught.value.current == 2
        with pytest.raises(NotFound):
            await versioned_update(tx, Page, {"id": 9}, 1, {"title": "x"})
        with pytest.raises(NotFound):  # another tenant's row is not found, not "stale"
            await versioned_update(tx, Page, {"id": 3}, 1, {"title": "hijacked"})
        retired = await tx.get_one(Page, 2)
        retired.soft_delete(datetime.now(UTC))
    async with db.transaction(tenant="acme") as tx:
        with pytest.raises(NotFound):  # soft-deleted: gone for updates as for reads
            await versioned_update(tx, Page, {"id": 2}, 1, {"title": "revived"})
    async with db.transaction(tenant="globex", read_only=True) as tx:
        theirs = await tx.get_one(Page, 3)
    assert (theirs.title, theirs.version) == ("Theirs", 1)


async def test_a_core_table_stamps_updated_at_too(db: Database) -> None:
    table = Page.__table__
    later = T0 + timedelta(hours=1)
    async with db.transaction(all_tenants=True) as tx:
        conn = await tx.connection()
        version = await versioned_update(
            conn, table, {"id": 1}, 1, {"page_title": "core"}, clock=ManualClock(later)
        )
        assert version == 2
        chosen = T0 + timedelta(days=1)
        assert await versioned_update(conn, table, {"id": 1}, 2, {"updated_at": chosen}) == 3
        row = (await conn.execute(select(table).where(table.c.id == 1))).one()
    assert (row.page_title, row.version, row.updated_at) == ("core", 3, chosen)


async def test_unknown_names_and_targets_are_refused(db: Database) -> None:
    async with db.transaction(tenant="acme") as tx:
        with pytest.raises(ValueError, match="'page_title' is not a column of versioned_pages"):
            await versioned_update(tx, Page, {"id": 1}, 1, {"page_title": "a column name"})
        with pytest.raises(ValueError, match="'revision'"):
            await versioned_update(tx, Page, {"id": 1}, 1, {}, version_column="revision")
        with pytest.raises(TypeError, match="a Table or a mapped class"):
            await versioned_update(tx, dict, {"id": 1}, 1, {})
