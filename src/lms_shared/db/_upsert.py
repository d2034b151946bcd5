"""Bulk upsert: ``INSERT ... ON CONFLICT DO UPDATE`` on SQLite and PostgreSQL.

One statement, executed for all rows at once (SQLAlchemy batches them into
multi-row ``VALUES``), using each dialect's own ``insert`` construct. The
rules of the session still hold: tenant-owned rows get the transaction's
tenant and a conflicting row of another tenant is never touched, and
``created_at``/``updated_at`` come from the injected clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from lms_shared.clock import Clock
from lms_shared.db._errors import TenantScopeError
from lms_shared.db._models import TenantMixin, TimestampMixin
from lms_shared.db._scoping import ALL_TENANTS_KEY, CLOCK_KEY, session_tenant
from lms_shared.errors import ConfigurationError

__all__ = ["upsert"]

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


async def upsert(
    tx: AsyncSession,
    model: type[Any],
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str] | None = None,
    update: Sequence[str] | None = None,
) -> int:
    """Insert ``rows``, updating the existing rows whose ``key`` matches.

    Args:
        tx: the unit of work's session.
        model: the mapped class.
        rows: attribute values, the same attributes in every row.
        key: the unique attributes that identify a row (the primary key by
            default; a unique constraint must cover them).
        update: the attributes to overwrite on conflict (by default every
            given attribute but the key and ``created_at``); empty means
            ``DO NOTHING``.

    Returns:
        How many rows were given (inserted or updated or left alone).

    Raises:
        ValueError: the rows differ in their attributes, or name unknown ones.
        TenantScopeError: tenant-owned rows outside the transaction's tenant.
        ConfigurationError: the dialect has no upsert.
    """
    if not rows:
        return 0
    mapper = sa_inspect(model)
    names = set(rows[0])
    if any(set(row) != names for row in rows):
        raise ValueError("every row of an upsert must give the same attributes")
    unknown = names - set(mapper.column_attrs.keys())
    if unknown:
        raise ValueError(f"{model.__name__} has no column attributes {sorted(unknown)}")
    dialect = tx.get_bind().dialect.name
    insert = _INSERTS.get(dialect)
    if insert is None:
        raise ConfigurationError(f"bulk upsert is not available on {dialect}")
    values = [dict(row) for row in rows]
    if issubclass(model, TenantMixin):
        _scope_rows(tx, model, values)
    if issubclass(model, TimestampMixin):
        clock = tx.info.get(CLOCK_KEY)
        if isinstance(clock, Clock):
            now = clock.now()
            for row in values:
                row.setdefault("created_at", now)
                row.setdefault("updated_at", now)
    columns = {attr.key: attr.columns[0] for attr in mapper.column_attrs}
    if key is None:
        index = list(mapper.primary_key)
        keys = [k for k, c in columns.items() if c in index]
    else:
        keys = list(key)
        index = [columns[k] for k in keys]
    if update is None:
        update = [n for n in values[0] if n not in keys and n != "created_at"]
    statement: Any = insert(model)
    if update:
        where = None
        if issubclass(model, TenantMixin):
            where = columns["tenant_id"] == statement.excluded[columns["tenant_id"].name]
        statement = statement.on_conflict_do_update(
            index_elements=index,
            set_={columns[n]: statement.excluded[columns[n].name] for n in update},
            where=where,
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=index)
    await tx.execute(statement, values)
    return len(values)


def _scope_rows(tx: AsyncSession, model: type[Any], values: list[dict[str, Any]]) -> None:
    tenant = session_tenant(tx.sync_session)
    if tenant is None:
        if not tx.info.get(ALL_TENANTS_KEY):
            raise TenantScopeError(
                f"{model.__name__} is tenant-owned: open the transaction with a tenant"
            )
        if any(row.get("tenant_id") is None for row in values):
            raise TenantScopeError(f"every {model.__name__} row needs its tenant_id")
        return
    for row in values:
        given = row.setdefault("tenant_id", tenant)
        if given != tenant:
            raise TenantScopeError(f"cannot write a {model.__name__} of another tenant")
