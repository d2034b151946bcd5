"""The data layer: engines and pools, units of work, migrations, query helpers.

Built on SQLAlchemy 2 (async) and Alembic; SQLite (aiosqlite) in the state
folder by default, PostgreSQL (asyncpg) when ``LMS_DATABASE_URL`` says so.
A service reaches its database as ``service.db`` (a :class:`Database`)::

    class Base(Model, DeclarativeBase):              # one per service: its own tables
        pass

    service.db.use_migrations(Path(__file__).parent / "migrations", metadata=Base.metadata)

    async with service.db.transaction() as tx:       # one attempt, savepoint if nested
        tx.add(course)
    await service.db.run(enroll, isolation="SERIALIZABLE")  # re-run on conflicts

    spec = QuerySpec(Course, filters={"title": ["contains"]}, sorts=["created_at"])
    rows, cursor = await spec.parse(params).page(tx, select(Course), page)

See ``docs/database.md``.
"""

from lms_shared.db._config import DatabaseConfig, parse_database_url
from lms_shared.db._database import Database
from lms_shared.db._engine import PoolStats
from lms_shared.db._errors import (
    PROBLEMS,
    ConstraintViolation,
    DatabaseBusy,
    DatabaseUnavailable,
    InvalidFilter,
    InvalidSort,
    MigrationError,
    StaleRead,
    TenantScopeError,
    TransactionConflict,
)
from lms_shared.db._filters import OPERATORS, QuerySpec
from lms_shared.db._idempotency import SqlIdempotencyStore, idempotency_table
from lms_shared.db._listing import Condition, ListQuery, SortKey
from lms_shared.db._migrations import Migrations, RevisionInfo
from lms_shared.db._models import (
    NAMING_CONVENTION,
    Model,
    SoftDeleteMixin,
    TenantMixin,
    TimestampMixin,
    UtcDateTime,
    model_metadata,
)
from lms_shared.db._scoping import current_tenant, tenant_context
from lms_shared.db._upsert import upsert
from lms_shared.db._versioned import versioned_update

__all__ = [
    "NAMING_CONVENTION",
    "OPERATORS",
    "PROBLEMS",
    "Condition",
    "ConstraintViolation",
    "Database",
    "DatabaseBusy",
    "DatabaseConfig",
    "DatabaseUnavailable",
    "InvalidFilter",
    "InvalidSort",
    "ListQuery",
    "MigrationError",
    "Migrations",
    "Model",
    "PoolStats",
    "QuerySpec",
    "RevisionInfo",
    "SoftDeleteMixin",
    "SortKey",
    "SqlIdempotencyStore",
    "StaleRead",
    "TenantMixin",
    "TenantScopeError",
    "TimestampMixin",
    "TransactionConflict",
    "UtcDateTime",
    "current_tenant",
    "idempotency_table",
    "model_metadata",
    "parse_database_url",
    "tenant_context",
    "upsert",
    "versioned_update",
]
