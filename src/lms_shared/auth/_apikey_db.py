"""API key records in the service's database (SQLite or PostgreSQL).

One table, ``lms_api_keys``, in its own ``MetaData`` (:data:`API_KEY_METADATA`):
a service that manages its schema with Alembic includes that metadata in
its migrations; otherwise the store creates it (idempotently, ``CREATE
TABLE IF NOT EXISTS``) on its first use, once the database has started.
Reads are read-only units of work (they may go to a replica); the SHA-256
digest column is unique.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, RowMapping, String, Table, Text, insert, select, update

from lms_shared.auth._apikeys import ApiKey
from lms_shared.db import Database, UtcDateTime, model_metadata

__all__ = ["API_KEY_METADATA", "API_KEY_TABLE", "DatabaseApiKeyStore"]

API_KEY_METADATA = model_metadata()
API_KEY_TABLE = Table(
    "lms_api_keys",
    API_KEY_METADATA,
    Column("id", String(16), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("owner", String(255), nullable=False, index=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("tenant", String(255), nullable=True),
    Column("roles", Text, nullable=False),
    Column("scopes", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Column("replaced_by", String(16), nullable=True),
)


def _row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "owner": key.owner,
        "hash": key.hash,
        "tenant": key.tenant,
        "roles": json.dumps(sorted(key.roles)),
        "scopes": None if key.scopes is None else json.dumps(sorted(key.scopes)),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
        "replaced_by": key.replaced_by,
    }


def _record(row: RowMapping) -> ApiKey:
    scopes = row["scopes"]
    return ApiKey(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        hash=row["hash"],
        tenant=row["tenant"],
        roles=frozenset(json.loads(row["roles"])),
        scopes=None if scopes is None else frozenset(json.loads(scopes)),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        replaced_by=row["replaced_by"],
    )


class DatabaseApiKeyStore:
    """API key records in a :class:`~lms_shared.db.Database`.

    Args:
        db: the service's database (started by the service).
    """

    def __init__(self, db: Database, *, create_table: bool = True) -> None:
        self.db = db
        self._table_ready = not create_table
        self._lock = asyncio.Lock()

    async def create_table(self) -> None:
        """Create ``lms_api_keys`` if it does not exist (done on first use anyway)."""
        async with self._lock:
            if not self._table_ready:
                async with self.db.transaction() as tx:
                    conn = await tx.connection()
                    await conn.run_sync(API_KEY_METADATA.create_all, checkfirst=True)
                self._table_ready = True

    async def _ready(self) -> None:
        if not self._table_ready:
            await self.create_table()

    async def add(self, key: ApiKey) -> None:
        """Store a new record.

        Raises:
            ConstraintViolation: the id or digest is taken.
        """
        await self._ready()
        async with self.db.transaction() as tx:
            await tx.execute(insert(API_KEY_TABLE).values(_row(key)))

    async def get(self, key_id: str) -> ApiKey | None:
        """The record with this id, or ``None``."""
        await self._ready()
        async with self.db.transaction(read_only=True) as tx:
            result = await tx.execute(select(API_KEY_TABLE).where(API_KEY_TABLE.c.id == key_id))
            row = result.mappings().first()
        return None if row is None else _record(row)

    async def list(self, *, owner: str | None = None) -> list[ApiKey]:
        """Every record (of one owner), oldest first."""
        await self._ready()
        query = select(API_KEY_TABLE).order_by(API_KEY_TABLE.c.created_at, API_KEY_TABLE.c.id)
        if owner is not None:
            query = query.where(API_KEY_TABLE.c.owner == owner)
        async with self.db.transaction(read_only=True) as tx:
            rows = (await tx.execute(query)).mappings().all()
        return [_record(row) for row in rows]

    async def update(self, key: ApiKey) -> None:
        """Replace the record with the same id."""
        await self._ready()
        values = _row(key)
        values.pop("id")
        async with self.db.transaction() as tx:
            await tx.execute(
                update(API_KEY_TABLE).where(API_KEY_TABLE.c.id == key.id).values(values)
            )

    async def touch(self, key_id: str, at: datetime) -> None:
        """Set ``last_used_at`` of one record."""
        await self._ready()
        async with self.db.transaction() as tx:
            await tx.execute(
                update(API_KEY_TABLE).where(API_KEY_TABLE.c.id == key_id).values(last_used_at=at)
            )
