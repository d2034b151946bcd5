"""The atomic half of optimistic concurrency: ``UPDATE ... WHERE version = :expected``.

:mod:`lms_shared.http.conditional` checks ``If-Match`` before any work;
:func:`versioned_update` makes the same check atomic in the database, so
two writers that both passed ``If-Match`` cannot both win.

It takes a Core :class:`~sqlalchemy.Table` or an ORM model class. Given a
model and a session of :class:`~lms_shared.db.Database`, the ``UPDATE`` is
an ORM statement, so the session's rules apply to it as to any query: the
transaction's tenant (another tenant's row is "not found"), soft delete (a
deleted row is "not found"), and the objects already loaded in the session
see the new values. Either way a ``TimestampMixin`` row's ``updated_at``
moves to the service clock's now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapper

from lms_shared.clock import Clock, SystemClock
from lms_shared.db._models import UPDATED_AT_INFO
from lms_shared.db._scoping import CLOCK_KEY
from lms_shared.errors import NotFound
from lms_shared.models._errors import StaleVersion

__all__ = ["versioned_update"]


async def versioned_update(
    connection: AsyncConnection | AsyncSession,
    table: Table | type[Any],
    key: Mapping[str, Any],
    expected_version: int,
    values: Mapping[str, Any],
    *,
    version_column: str = "version",
    clock: Clock | None = None,
) -> int:
    """``UPDATE`` one row only if it is still at ``expected_version``; bump its version.

    Args:
        connection: a connection or session inside the caller's transaction
            (a session of ``service.db`` for the ORM's tenant and
            soft-delete rules).
        table: the resource's table, or its ORM model class (then ``key``
            and ``values`` name the model's attributes).
        key: primary-key values (``{"id": course_id}``).
        expected_version: the version the change was based on.
        values: the new values (``version`` is set here).
        version_column: the name of the version column (or attribute).
        clock: where ``updated_at`` comes from; by default the session's
            clock (the service's), else the system clock.

    Returns:
        The new version.

    Raises:
        StaleVersion: the row is at another version (412).
        NotFound: there is no such row (404), or the session's tenant or
            soft-delete rules hide it.
        ValueError: ``key``, ``values`` or ``version_column`` name no column
            of the table or model.
        TypeError: ``table`` is neither a table nor a mapped class.
    """
    name, columns, stamped = _describe(table)

    def column(attr: str) -> Any:
        try:
            return columns[attr]
        except KeyError:
            raise ValueError(
                f"{attr!r} is not a column of {name}; known: {', '.join(sorted(columns))}"
            ) from None

    where = [column(attr) == value for attr, value in key.items()]
    version = column(version_column)
    changes = {k: v for k, v in values.items() if k != version_column}
    for attr in changes:
        column(attr)
    for attr in stamped:
        if attr not in changes:
            changes[attr] = _now(connection, clock)
    statement = (
        update(table)
        .where(*where, version == expected_version)
        .values(**changes, **{version_column: version + 1})
        .returning(version)
    )
    row = (await connection.execute(statement)).first()
    if row is not None:
        return int(row[0])
    current = (await connection.execute(select(version).where(*where))).scalar_one_or_none()
    if current is None:
        where_text = ", ".join(f"{attr}={value}" for attr, value in key.items())
        raise NotFound(f"no {name} row with {where_text}")
    raise StaleVersion(
        f"the resource changed: it is at version {current}, the update was based on "
        f"{expected_version}; read it again and retry",
        current=int(current),
    )


def _describe(target: Table | type[Any]) -> tuple[str, dict[str, Any], list[str]]:
    """The target's name, its columns by key (or attribute), and those stamped on change."""
    if isinstance(target, Table):
        return (
            target.name,
            {c.key: c for c in target.c},
            [c.key for c in target.c if c.info.get(UPDATED_AT_INFO)],
        )
    mapper = inspect(target, raiseerr=False)
    if not isinstance(mapper, Mapper):
        raise TypeError(f"versioned_update takes a Table or a mapped class, got {target!r}")
    attrs = list(mapper.column_attrs)
    return (
        str(getattr(mapper.local_table, "name", mapper.class_.__name__)),
        {a.key: getattr(target, a.key) for a in attrs},
        [a.key for a in attrs if any(c.info.get(UPDATED_AT_INFO) for c in a.columns)],
    )


def _now(connection: AsyncConnection | AsyncSession, clock: Clock | None) -> Any:
    if clock is None and isinstance(connection, AsyncSession):
        found = connection.info.get(CLOCK_KEY)
        clock = found if isinstance(found, Clock) else None
    return (clock or SystemClock()).now()
