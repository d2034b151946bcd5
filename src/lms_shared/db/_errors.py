"""The database's errors and their problem codes (a leaf of ``lms_shared.db``).

Driver and SQLAlchemy errors never leave a unit of work as they are: the
transaction boundary translates them (``raise ... from exc``) into this
part of the exception tree::

    LmsError
    ├── MigrationError                migrations are misconfigured or failed
    └── ProblemError
        ├── BadRequest
        │   ├── InvalidFilter         400 invalid-filter: unknown field/operator/value
        │   └── InvalidSort           400 invalid-sort: unknown or repeated sort field
        ├── TenantScopeError          403: no tenant, or a write into another tenant
        ├── Conflict
        │   ├── TransactionConflict   409: serialization failure/deadlock, retries spent
        │   ├── StaleRead             409: a concurrent unit changed what this one read
        │   └── ConstraintViolation   409: a unique/foreign-key/check constraint
        └── ServiceUnavailable
            ├── DatabaseUnavailable   503: cannot reach the database (names the host)
            └── DatabaseBusy          503: no pooled connection within the pool timeout

Every 503 carries ``Retry-After``.
"""

from __future__ import annotations

from lms_shared import errors
from lms_shared.errors import (
    BadRequest,
    Conflict,
    ErrorCode,
    LmsError,
    ProblemError,
    ServiceUnavailable,
)

__all__ = [
    "PROBLEMS",
    "ConstraintViolation",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "InvalidFilter",
    "InvalidSort",
    "MigrationError",
    "StaleRead",
    "TenantScopeError",
    "TransactionConflict",
]

INVALID_FILTER = errors.ErrorCode("invalid-filter", 400, "Invalid filter")
INVALID_SORT = errors.ErrorCode("invalid-sort", 400, "Invalid sort order")
TRANSACTION_CONFLICT = errors.ErrorCode("transaction-conflict", 409, "Concurrent update, try again")
CONSTRAINT_VIOLATION = errors.ErrorCode(
    "constraint-violation", 409, "The change conflicts with existing data"
)
TENANT_SCOPE = errors.ErrorCode("tenant-scope", 403, "Outside the tenant's data")
DATABASE_UNAVAILABLE = errors.ErrorCode("database-unavailable", 503, "Database unavailable")
DATABASE_BUSY = errors.ErrorCode("database-busy", 503, "Database busy")

PROBLEMS: tuple[ErrorCode, ...] = (
    INVALID_FILTER,
    INVALID_SORT,
    TRANSACTION_CONFLICT,
    CONSTRAINT_VIOLATION,
    TENANT_SCOPE,
    DATABASE_UNAVAILABLE,
    DATABASE_BUSY,
)
"""The problem codes of this module, for the service's catalogue."""


class InvalidFilter(BadRequest):
    """400: a filter names a field or operator that is not allowed, or a bad value.

    Attributes:
        parameter: the offending query parameter (``title[regex]``).
    """

    code = INVALID_FILTER

    def __init__(self, detail: str, *, parameter: str) -> None:
        self.parameter = parameter
        super().__init__(detail, parameter=parameter)


class InvalidSort(BadRequest):
    """400: the sort names a field that is not sortable, or names one twice.

    Attributes:
        field: the offending field.
    """

    code = INVALID_SORT

    def __init__(self, detail: str, *, field: str) -> None:
        self.field = field
        super().__init__(detail, field=field)


class TenantScopeError(ProblemError):
    """403: a query of tenant-owned data without a tenant, or a cross-tenant write."""

    code = TENANT_SCOPE


class TransactionConflict(Conflict):
    """409: the unit of work kept hitting serialization failures or deadlocks.

    Attributes:
        attempts: how many times the unit of work ran.
        sqlstate: the last error's SQLSTATE (``40001``, ``40P01``), or the
            SQLite result name (``SQLITE_BUSY``).
    """

    code = TRANSACTION_CONFLICT

    def __init__(self, detail: str, *, attempts: int, sqlstate: str | None) -> None:
        self.attempts = attempts
        self.sqlstate = sqlstate
        super().__init__(detail)


class StaleRead(Conflict):
    """409: a concurrent unit of work changed what this one read; nothing was written.

    The optimistic-concurrency failure of our own code (an event stream not
    at the expected version, a checkpoint another runner moved): unlike a
    client's stale ``If-Match``, the unit of work read the state itself, so
    running it again reads the new state. :meth:`Database.run
    <lms_shared.db.Database.run>` re-runs a unit that raises one, like a
    serialization failure, and raises the last one when the attempts are
    spent. Subclasses give the problem its own code.
    """


class ConstraintViolation(Conflict):
    """409: the change violates a constraint (duplicate key, missing reference).

    Attributes:
        constraint: the constraint's name when the driver reports it (kept
            out of the client-facing detail).
    """

    code = CONSTRAINT_VIOLATION

    def __init__(self, detail: str, *, constraint: str | None = None) -> None:
        self.constraint = constraint
        super().__init__(detail)


class DatabaseUnavailable(ServiceUnavailable):
    """503: the database cannot be reached (or the connection was lost).

    Attributes:
        host: where the database is (``127.0.0.1:5432``, a list of hosts, or
            the SQLite file).
        attempts: connection attempts made.
        outcome_unknown: the connection was lost while committing, so the
            write may or may not have happened; it is never retried.
    """

    code = DATABASE_UNAVAILABLE

    def __init__(
        self,
        detail: str,
        *,
        host: str,
        attempts: int = 1,
        outcome_unknown: bool = False,
        retry_after: int = 5,
    ) -> None:
        self.host = host
        self.attempts = attempts
        self.outcome_unknown = outcome_unknown
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class DatabaseBusy(ServiceUnavailable):
    """503: every pooled connection stayed in use for the whole pool timeout."""

    code = DATABASE_BUSY

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class MigrationError(LmsError):
    """Migrations are misconfigured (no folder, bad revision) or failed to run."""
