"""What a database error means, and what to do about it.

The transaction boundary classifies every error that escapes a unit of
work and translates it (``raise ... from exc``):

* **conflict** - SQLSTATE ``40001`` (serialization failure) or ``40P01``
  (deadlock) on PostgreSQL, ``SQLITE_BUSY``/``SQLITE_LOCKED`` on SQLite:
  nothing was written, re-running the whole unit of work is safe;
* **disconnect** - the server went away or refused the connection
  (SQLSTATE class ``08``, ``57P01``-``57P03``, socket errors): safe to
  re-run unless it happened while committing;
* **pool timeout** - every pooled connection stayed busy, or a statement
  outlived ``statement_timeout``: a 503 with ``Retry-After``;
* **integrity** - a constraint said no: a 409, never retried.

Anything else is the caller's own error and passes through unchanged.
"""

from __future__ import annotations

import random
from typing import Literal

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from lms_shared.db._errors import (
    ConstraintViolation,
    DatabaseBusy,
    DatabaseUnavailable,
    TransactionConflict,
)
from lms_shared.errors import LmsError

__all__ = [
    "CONFLICT_SQLSTATES",
    "Phase",
    "backoff_delay",
    "error_state",
    "is_conflict",
    "is_disconnect",
    "translate",
]

Phase = Literal["connect", "body", "commit"]

CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
_DISCONNECT_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_UNREACHABLE = frozenset({10, 14})  # SQLITE_IOERR, SQLITE_CANTOPEN
QUERY_CANCELED = "57014"  # statement_timeout (or a cancel request)


def _origins(exc: BaseException) -> list[BaseException]:
    """The error, the driver's error it wraps, and that one's cause."""
    found: list[BaseException] = [exc]
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    if isinstance(orig, BaseException):
        found.append(orig)
        if orig.__cause__ is not None:
            found.append(orig.__cause__)
    return found


def error_state(exc: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, or the result name of a SQLite one."""
    for item in _origins(exc):
        state = getattr(item, "sqlstate", None)
        if isinstance(state, str) and state:
            return state
        code = getattr(item, "sqlite_errorcode", None)
        if isinstance(code, int):
            name = getattr(item, "sqlite_errorname", None)
            return name if isinstance(name, str) else f"SQLITE_{code}"
    return None


def is_conflict(exc: BaseException) -> bool:
    """A serialization failure or deadlock: the unit of work may simply run again."""
    if not isinstance(exc, DBAPIError):
        return False
    for item in _origins(exc):
        if getattr(item, "sqlstate", None) in CONFLICT_SQLSTATES:
            return True
        code = getattr(item, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return True
    return False


def is_disconnect(exc: BaseException) -> bool:
    """The connection failed or was lost (server down, restarting, unreachable)."""
    if isinstance(exc, OSError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = error_state(exc)
    if state is not None and (state.startswith("08") or state in _DISCONNECT_SQLSTATES):
        return True
    for item in _origins(exc)[1:]:
        code = getattr(item, "sqlite_errorcode", None)
        if isinstance(item, OSError) or (
            isinstance(code, int) and code & 0xFF in _SQLITE_UNREACHABLE
        ):
            return True
    return False


def _constraint(exc: BaseException) -> str | None:
    for item in _origins(exc):
        name = getattr(item, "constraint_name", None)
        if isinstance(name, str):
            return name
    return None


def translate(exc: BaseException, *, phase: Phase, where: str) -> LmsError | None:
    """The typed error for a database failure, or ``None`` if it is not one.

    Args:
        exc: what escaped the unit of work.
        phase: where it happened: getting a connection, running the body,
            or committing (a lost connection while committing leaves the
            outcome unknown).
        where: the database's location, named in the message.
    """
    if isinstance(exc, PoolTimeoutError):
        return DatabaseBusy("every database connection is busy; try again shortly")
    if error_state(exc) == QUERY_CANCELED:
        return DatabaseBusy("a database statement ran longer than the statement timeout")
    if is_conflict(exc):
        state = error_state(exc)
        return TransactionConflict(
            "the change collided with a concurrent one; try again", attempts=1, sqlstate=state
        )
    if is_disconnect(exc):
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        if phase == "commit":
            return DatabaseUnavailable(
                f"lost the connection to the database at {where} while committing; "
                f"the outcome is unknown ({reason})",
                host=where,
                outcome_unknown=True,
            )
        return DatabaseUnavailable(f"cannot reach the database at {where} ({reason})", host=where)
    if isinstance(exc, IntegrityError):
        return ConstraintViolation(
            "the change conflicts with existing data (a uniqueness or reference rule)",
            constraint=_constraint(exc),
        )
    return None


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    Exponential (``base * 2**(attempt-1)``, at most ``cap``) with jitter
    between half and all of it, so colliding transactions spread out.
    """
    delay: float = min(cap, base * 2.0 ** (attempt - 1))
    return delay * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not secrecy)
