"""Tenant scoping, soft delete and timestamps, applied by the session itself.

Every session a :class:`~lms_shared.db.Database` opens is of a class with
two listeners:

* ``do_orm_execute``: in a transaction with a tenant, every ORM SELECT,
  UPDATE and DELETE gets ``tenant_id = :tenant`` for each tenant-owned
  entity *wherever it appears* (joins, subqueries, relationship loads),
  through SQLAlchemy's ``with_loader_criteria``. Without a tenant, a
  statement on a tenant-owned model is refused, unless it opts out with
  ``execution_options(all_tenants=True)`` (admin jobs, migrations).
  Soft-deleted rows are left out unless ``include_deleted=True``.
* ``before_flush``: new tenant-owned rows get the transaction's tenant (a
  row naming another tenant is refused), and ``created_at``/``updated_at``
  come from the service's clock.

Raw SQL (``text()``) and Core statements on tables bypass the ORM and so
these rules; use ORM entities for tenant-owned data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlalchemy.sql.util import find_tables

from lms_shared.clock import Clock
from lms_shared.db._errors import TenantScopeError
from lms_shared.db._models import (
    SoftDeleteMixin,
    TenantMixin,
    TimestampMixin,
    tenant_owned,
)

__all__ = [
    "ALL_TENANTS_KEY",
    "CLOCK_KEY",
    "TENANT_KEY",
    "current_tenant",
    "scoped_session_class",
    "session_tenant",
    "tenant_context",
]

TENANT_KEY = "lms_tenant"
ALL_TENANTS_KEY = "lms_all_tenants"
CLOCK_KEY = "lms_clock"

_tenant: ContextVar[str | None] = ContextVar("lms_db_tenant", default=None)


@contextmanager
def tenant_context(tenant: str) -> Iterator[None]:
    """Scope the transactions opened inside the block to ``tenant``.

    Auth middleware or a dependency sets it once per request; an explicit
    ``transaction(tenant=...)`` wins over it.

    Raises:
        ValueError: the tenant is empty.
    """
    if not tenant:
        raise ValueError("a tenant is a non-empty string")
    token = _tenant.set(tenant)
    try:
        yield
    finally:
        _tenant.reset(token)


def current_tenant() -> str | None:
    """The tenant set by the innermost :func:`tenant_context`, if any."""
    return _tenant.get()


def session_tenant(session: Session) -> str | None:
    """The tenant a session is scoped to (``None``: unscoped)."""
    tenant = session.info.get(TENANT_KEY)
    return tenant if isinstance(tenant, str) else None


def scoped_session_class(name: str) -> type[Session]:
    """A new ``Session`` subclass carrying the scoping listeners."""
    cls: type[Session] = type(f"{name}Session", (Session,), {"__module__": __name__})
    event.listen(cls, "do_orm_execute", _scope_statement)
    event.listen(cls, "before_flush", _stamp_rows)
    return cls


def _scope_statement(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the criteria of the parent query propagate to these loads
    tenant = session_tenant(state.session)
    options = state.execution_options
    mappers = state.all_mappers
    criteria: list[Any] = []
    if tenant is not None:
        criteria.append(
            with_loader_criteria(
                TenantMixin, lambda cls: cls.tenant_id == tenant, include_aliases=True
            )
        )
    elif not (options.get("all_tenants", False) or state.session.info.get(ALL_TENANTS_KEY)):
        owned_mappers = [m for m in mappers if tenant_owned(m.class_)]
        owned = [m.class_.__name__ for m in owned_mappers]
        named = {getattr(m.local_table, "name", None) for m in owned_mappers}
        owned += [t for t in _tenant_tables(state.statement) if t not in named]
        if owned:
            raise TenantScopeError(
                f"{', '.join(owned)} is tenant-owned: open the transaction with a tenant"
            )
    # always, not only when an entity is selected: select(func.count()).select_from(Model)
    # selects no entity, yet its FROM must still leave soft-deleted rows out
    if not options.get("include_deleted", False):
        criteria.append(
            with_loader_criteria(
                SoftDeleteMixin, lambda cls: cls.deleted_at.is_(None), include_aliases=True
            )
        )
    if criteria:
        state.statement = state.statement.options(*criteria)


def _tenant_tables(statement: Any) -> list[str]:
    """Tables in a statement's FROMs that carry a ``tenant_id`` column.

    Catches statements that name a tenant-owned table without selecting its
    entity (``select(func.count()).select_from(Course)``).
    """
    try:
        tables = find_tables(statement, include_joins=True, include_aliases=True)
    except (AttributeError, TypeError):  # a statement shape find_tables cannot walk
        return []
    return sorted({t.name for t in tables if "tenant_id" in getattr(t, "c", ())})


def _stamp_rows(session: Session, _: UOWTransaction, __: object) -> None:
    tenant = session_tenant(session)
    everyone = bool(session.info.get(ALL_TENANTS_KEY))
    clock = session.info.get(CLOCK_KEY)
    now = clock.now() if isinstance(clock, Clock) else None
    for obj in session.new:
        if isinstance(obj, TenantMixin):
            _check_tenant(obj, tenant, everyone, new=True)
        if isinstance(obj, TimestampMixin) and now is not None:
            if getattr(obj, "created_at", None) is None:
                obj.created_at = now
            if getattr(obj, "updated_at", None) is None:
                obj.updated_at = now
    for obj in session.dirty:
        if isinstance(obj, TenantMixin):
            _check_tenant(obj, tenant, everyone, new=False)
        if isinstance(obj, TimestampMixin) and now is not None and session.is_modified(obj):
            obj.updated_at = now


def _check_tenant(obj: TenantMixin, tenant: str | None, everyone: bool, *, new: bool) -> None:
    name = type(obj).__name__
    if tenant is None:
        if not everyone:
            raise TenantScopeError(f"{name} is tenant-owned: open the transaction with a tenant")
        if obj.tenant_id is None:
            raise TenantScopeError(f"a new {name} needs its tenant_id in an all-tenants unit")
        return
    if obj.tenant_id is None and new:
        obj.tenant_id = tenant
    elif obj.tenant_id != tenant:
        raise TenantScopeError(f"cannot write a {name} of another tenant")
