"""The SQL idempotency store: Idempotency-Key records in the service's database.

It follows the one rule set of the memory store,
:func:`lms_shared.models.decide`: an expired key is forgotten; the same key
with another fingerprint is refused; a completed key replays its response;
a claimed key whose lease ran out is taken over; otherwise the key is in
flight.

:class:`SqlIdempotencyStore` keeps keys in one SQLAlchemy Core table, on
SQLite and PostgreSQL. Put the table in the service's own ``MetaData`` so
its migrations create it::

    idempotency_keys = idempotency_table(Base.metadata)
    store = SqlIdempotencyStore(service.db, table=idempotency_keys)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import orjson
from sqlalchemy import (
    Column,
    DateTime,
    Insert,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lms_shared.models._errors import IdempotencyInFlight
from lms_shared.models.idempotency import (
    DONE,
    PENDING,
    Claim,
    IdempotencyRecord,
    StoredResponse,
    decide,
)

__all__ = ["SqlIdempotencyStore", "idempotency_table"]

DEFAULT_TABLE: Final = "lms_idempotency_keys"


def idempotency_table(metadata: MetaData, name: str = DEFAULT_TABLE) -> Table:
    """The idempotency keys table, defined on ``metadata`` (for the service's migrations)."""
    return Table(
        name,
        metadata,
        Column("scope", String(300), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("token", String(32), nullable=False),
        Column("state", String(16), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
        Column("status_code", Integer, nullable=True),
        Column("headers", Text, nullable=True),
        Column("body", LargeBinary, nullable=True),
    )


class _HasEngine(Protocol):
    @property
    def engine(self) -> AsyncEngine: ...


class SqlIdempotencyStore:
    """Keys in a table of the service's database (SQLite or PostgreSQL).

    Args:
        database: an ``AsyncEngine``, or anything with an ``engine``
            property (the service's :class:`lms_shared.db.Database`); read
            on first use, so building the store connects nothing.
        table: the table from :func:`idempotency_table`; one on a private
            ``MetaData`` by default (create it with :meth:`create_table`).
    """

    def __init__(self, database: AsyncEngine | _HasEngine, *, table: Table | None = None) -> None:
        self._database = database
        self.table = table if table is not None else idempotency_table(MetaData())

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store writes through."""
        if isinstance(self._database, AsyncEngine):
            return self._database
        return self._database.engine

    async def create_table(self) -> None:
        """Create the table if it does not exist (tests, tools; services migrate)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda sync: self.table.create(sync, checkfirst=True))

    async def claim(
        self, scope: str, key: str, fingerprint: str, *, now: datetime, lease: timedelta
    ) -> Claim | StoredResponse:
        """See :class:`~lms_shared.models.IdempotencyStore`."""
        t = self.table
        now = now.astimezone(UTC)
        token = uuid.uuid4().hex
        fresh = {
            "fingerprint": fingerprint,
            "token": token,
            "state": PENDING,
            "expires_at": now + lease,
            "status_code": None,
            "headers": None,
            "body": None,
        }
        for _ in range(3):  # the row may vanish between the insert and the read
            async with self.engine.begin() as conn:
                statement = self._insert_ignore(conn).values(scope=scope, key=key, **fresh)
                if (await conn.execute(statement.returning(t.c.token))).first() is not None:
                    return Claim(scope, key, token)
                row = (await conn.execute(select(t).where(*self._where(scope, key)))).first()
                if row is None:
                    continue
                record = _record(row._mapping)
                stored = decide(record, fingerprint, now)
                if stored is not None:
                    return stored
                taken = await conn.execute(
                    update(t)
                    .where(*self._where(scope, key), t.c.token == record.token)
                    .values(**fresh)
                    .returning(t.c.token)
                )
                if taken.first() is not None:
                    return Claim(scope, key, token)
        raise IdempotencyInFlight("the Idempotency-Key is contended; retry later")

    async def complete(
        self, claim: Claim, response: StoredResponse, *, now: datetime, ttl: timedelta
    ) -> bool:
        """See :class:`~lms_shared.models.IdempotencyStore`."""
        t = self.table
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(t)
                .where(*self._where(claim.scope, claim.key), t.c.token == claim.token)
                .values(
                    state=DONE,
                    expires_at=now.astimezone(UTC) + ttl,
                    status_code=response.status_code,
                    headers=orjson.dumps(response.headers).decode(),
                    body=response.body,
                )
                .returning(t.c.token)
            )
            return result.first() is not None

    async def release(self, claim: Claim) -> None:
        """See :class:`~lms_shared.models.IdempotencyStore`."""
        t = self.table
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(t).where(*self._where(claim.scope, claim.key), t.c.token == claim.token)
            )

    async def purge(self, now: datetime) -> int:
        """See :class:`~lms_shared.models.IdempotencyStore`."""
        t = self.table
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(t).where(t.c.expires_at <= now.astimezone(UTC)).returning(t.c.key)
            )
            return len(result.all())

    def _where(self, scope: str, key: str) -> tuple[Any, ...]:
        return (self.table.c.scope == scope, self.table.c.key == key)

    def _insert_ignore(self, conn: AsyncConnection) -> Insert:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(self.table).on_conflict_do_nothing()
        if dialect == "sqlite":
            return sqlite.insert(self.table).on_conflict_do_nothing()
        raise NotImplementedError(
            f"the idempotency store supports SQLite and PostgreSQL, not {dialect}"
        )


def _record(row: Any) -> IdempotencyRecord:
    expires_at = row["expires_at"]
    if expires_at.tzinfo is None:  # SQLite keeps no zone; the store writes UTC
        expires_at = expires_at.replace(tzinfo=UTC)
    response = None
    if row["state"] == DONE:
        headers = tuple((str(k), str(v)) for k, v in orjson.loads(row["headers"] or "[]"))
        response = StoredResponse(int(row["status_code"]), headers, bytes(row["body"] or b""))
    return IdempotencyRecord(row["fingerprint"], row["token"], row["state"], expires_at, response)
