"""URLs, configuration, error classification and the public surface (no server needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

import lms_shared.db
from lms_shared import ConfigurationError, LmsError, ProblemError, ServiceUnavailable, errors
from lms_shared.db import Database, DatabaseConfig, parse_database_url
from lms_shared.db._retry import backoff_delay, error_state, is_conflict, is_disconnect, translate


@pytest.mark.parametrize(
    ("raw", "rendered"),
    [
        ("sqlite:///data/x.sqlite3", "sqlite+aiosqlite:///data/x.sqlite3"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        (
            "postgresql://u@h1:5432,h2/db",
            "postgresql+asyncpg://u@/db?host=h1%3A5432&host=h2%3A5432&target_session_attrs=read-write",
        ),
        (
            "postgresql+asyncpg://u@/db?host=h1:1&host=h2:2&target_session_attrs=primary",
            "postgresql+asyncpg://u@/db?host=h1%3A1&host=h2%3A2&target_session_attrs=primary",
        ),
    ],
)
def test_urls_are_normalised_to_the_async_drivers(raw: str, rendered: str) -> None:
    assert parse_database_url(raw).render_as_string(hide_password=False) == rendered


def test_replica_urls_with_several_hosts_prefer_a_standby() -> None:
    url = parse_database_url("postgresql://u@r1:5432,r2:5432/db", replica=True)
    assert url.query["target_session_attrs"] == "prefer-standby"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("mysql://u@h/db", "unsupported database URL scheme 'mysql'"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("not a url", "not a database URL"),
        ("postgresql://u@,h2/db", "empty host"),
        ("postgresql://u:secret@h:notaport/db", "cannot parse"),
    ],
)
def test_bad_urls_are_configuration_errors(raw: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words) as caught:
        parse_database_url(raw)
    assert "secret" not in str(caught.value)


def test_where_names_the_hosts_or_the_file(tmp_path: Path) -> None:
    assert DatabaseConfig.for_url("postgresql://u@h/db").where == "h:5432"
    assert DatabaseConfig.for_url("postgresql://u@h1:1,h2:2/db").where == "h1:1,h2:2"
    sqlite = DatabaseConfig.for_url(f"sqlite:///{tmp_path}/a.db", service="my-svc")
    assert sqlite.where == f"{tmp_path}/a.db"
    assert sqlite.version_table == "alembic_version_my_svc"
    assert DatabaseConfig.for_url("postgresql://u:pw@h/db").redacted_url() == (
        "postgresql+asyncpg://u:***@h/db"
    )


def test_engines_get_the_pool_settings() -> None:
    config = DatabaseConfig.for_url(
        "postgresql://u@h/db", pool_size=3, max_overflow=4, pool_timeout=1.5, schema="svc"
    )
    db = Database(config)
    pool = db.engine.pool
    assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 4, 1.5)  # type: ignore[attr-defined]
    assert db.pool_stats().in_use == 0


class _State(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


class _Sqlite(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.sqlite_errorcode = code


def wrapped(orig: Exception, cls: type[DBAPIError] = OperationalError) -> DBAPIError:
    return cls("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("exc", "conflict", "disconnect"),
    [
        (wrapped(_State("40001")), True, False),
        (wrapped(_State("40P01")), True, False),
        (wrapped(_Sqlite(5)), True, False),
        (wrapped(_Sqlite(517)), True, False),  # SQLITE_BUSY_SNAPSHOT
        (wrapped(_Sqlite(6)), True, False),
        (wrapped(_State("08006")), False, True),
        (wrapped(_State("57P01")), False, True),
        (wrapped(_State("57P03")), False, True),
        (wrapped(_Sqlite(14)), False, True),  # SQLITE_CANTOPEN
        (wrapped(ConnectionResetError()), False, True),
        (ConnectionRefusedError(), False, True),
        (wrapped(_State("23505"), IntegrityError), False, False),
        (wrapped(_State("42P01")), False, False),
        (ValueError("not a database error"), False, False),
    ],
)
def test_errors_are_classified(exc: BaseException, conflict: bool, disconnect: bool) -> None:
    assert is_conflict(exc) is conflict
    assert is_disconnect(exc) is disconnect


def test_translation_at_the_boundary() -> None:
    busy = translate(PoolTimeoutError("QueuePool limit"), phase="connect", where="h:1")
    assert isinstance(busy, ServiceUnavailable)
    assert busy.headers == {"Retry-After": "1"}
    lost = translate(wrapped(_State("08006")), phase="body", where="h:1")
    assert isinstance(lost, lms_shared.db.DatabaseUnavailable)
    assert not lost.outcome_unknown
    assert "h:1" in str(lost)
    unknown = translate(wrapped(_State("08006")), phase="commit", where="h:1")
    assert isinstance(unknown, lms_shared.db.DatabaseUnavailable)
    assert unknown.outcome_unknown
    canceled = translate(wrapped(_State("57014")), phase="body", where="h:1")
    assert isinstance(canceled, lms_shared.db.DatabaseBusy)
    constraint = _State("23505")
    constraint.constraint_name = "uq_items_name"  # type: ignore[attr-defined]
    violation = translate(wrapped(constraint, IntegrityError), phase="body", where="h")
    assert isinstance(violation, lms_shared.db.ConstraintViolation)
    assert violation.constraint == "uq_items_name"
    assert translate(ValueError(), phase="body", where="h") is None
    assert error_state(wrapped(_Sqlite(5))) == "SQLITE_5"


def test_backoff_grows_is_jittered_and_capped() -> None:
    for attempt in range(1, 10):
        delay = backoff_delay(attempt, 0.1, 1.0)
        ceiling = min(1.0, 0.1 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_the_error_tree_and_catalogue() -> None:
    db = lms_shared.db
    assert issubclass(db.DatabaseUnavailable, ServiceUnavailable)
    assert issubclass(db.DatabaseBusy, ServiceUnavailable)
    assert issubclass(db.TransactionConflict, lms_shared.Conflict)
    assert issubclass(db.ConstraintViolation, lms_shared.Conflict)
    assert issubclass(db.InvalidFilter, lms_shared.BadRequest)
    assert issubclass(db.InvalidSort, lms_shared.BadRequest)
    assert issubclass(db.TenantScopeError, ProblemError)
    assert issubclass(db.MigrationError, LmsError)
    for slug, status in {
        "invalid-filter": 400,
        "invalid-sort": 400,
        "tenant-scope": 403,
        "transaction-conflict": 409,
        "constraint-violation": 409,
        "database-unavailable": 503,
        "database-busy": 503,
    }.items():
        assert errors.Catalogue(lms_shared.db.PROBLEMS)[slug].status == status


PROBE = """
import threading, os
threads = threading.active_count()
import lms_shared.db, lms_shared.testing
from lms_shared import create_service
service = create_service("probe", version="1")
db = service.db  # made, registered, but not opened
assert db._engine is None, "an engine was created"
assert threading.active_count() == threads, "a thread was started"
assert not os.path.exists(".lms"), "the state folder was created"
print("clean")
"""


def test_nothing_happens_at_import_or_first_touch(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"
