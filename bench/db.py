"""Database: primary-key SELECT through lms_shared.db vs raw SQLAlchemy async and asyncpg.

One process, one PostgreSQL server (``LMS_BENCH_POSTGRES_URL``, else
``LMS_TEST_POSTGRES_URL``, else ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``),
a private schema with a 1,000-row table, dropped afterwards. Each round
runs every variant back to back, each doing the same number of sequential
primary-key lookups, and records the microseconds per lookup:

* ``lms transaction()``: ``async with db.transaction(read_only=True) as tx:
  await tx.get(Item, id)`` - the helper a handler uses;
* ``lms run()``: ``await db.run(lambda tx: tx.get(Item, id), read_only=True)``,
  the retrying unit of work;
* ``SQLAlchemy``: ``async with sessionmaker.begin() as s: await s.get(Item, id)``
  on the same engine and pool (the target: lms >= 0.9x of it);
* ``SQLAlchemy, default engine``: the same on ``create_async_engine(url)``
  with SQLAlchemy's defaults (no pre-ping), for reference;
* ``asyncpg``: ``pool.acquire()`` + ``fetchrow`` (no ORM, no transaction),
  the driver's floor, for reference.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from sqlalchemy import String, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bench._load import loop_factory
from bench._report import Comparison, Target, parser, save
from lms_shared.db import Database, DatabaseConfig, Model
from lms_shared.testing import DEFAULT_POSTGRES_URL, postgres_unreachable

ROWS = 1000
NAMES = {
    "lms": "lms transaction()",
    "lms_run": "lms run()",
    "sqlalchemy": "SQLAlchemy",
    "sqlalchemy_default": "SQLAlchemy, default engine",
    "asyncpg": "asyncpg",
}


class Base(Model, DeclarativeBase):
    """The benchmark's own registry."""


class Item(Base):
    """The row looked up by primary key."""

    __tablename__ = "bench_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    rank: Mapped[int]


Lookup = Callable[[int], Awaitable[Any]]


def _options(argv: list[str]) -> Any:
    cli = parser("db", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds (default 9, quick 3)")
    cli.add_argument("--lookups", type=int, help="lookups per variant per round (default 400)")
    cli.add_argument("--url", help="PostgreSQL URL (default: LMS_BENCH_POSTGRES_URL)")
    return cli.parse_args(argv)


async def _setup(url: str, schema: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        await conn.run_sync(Base.metadata.create_all)
        rows = [{"id": i, "name": f"item {i}", "rank": i % 7} for i in range(1, ROWS + 1)]
        await conn.execute(insert(Item), rows)
    await engine.dispose()


async def _teardown(url: str, schema: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


async def _measure(lookup: Lookup, count: int, offset: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        await lookup((offset + i) % ROWS + 1)
    return (time.perf_counter() - started) / count * 1e6


async def _run(url: str, rounds: int, lookups: int) -> Comparison:
    schema = f"lms_bench_{secrets.token_hex(4)}"
    await _setup(url, schema)
    db = Database(DatabaseConfig.for_url(url, service="bench", schema=schema))
    default: AsyncEngine = create_async_engine(
        url, connect_args={"server_settings": {"search_path": schema}}
    )
    import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415 (the driver itself)

    raw_url = db.config.url.set(drivername="postgresql").render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(
        raw_url, min_size=1, max_size=5, server_settings={"search_path": schema}
    )
    same = async_sessionmaker(db.engine, expire_on_commit=False)
    plain = async_sessionmaker(default, expire_on_commit=False)

    async def lms(key: int) -> Any:
        async with db.transaction(read_only=True) as tx:
            return await tx.get(Item, key)

    async def lms_run(key: int) -> Any:
        return await db.run(lambda tx: tx.get(Item, key), read_only=True)

    async def sqlalchemy(key: int) -> Any:
        async with same.begin() as session:
            return await session.get(Item, key)

    async def sqlalchemy_default(key: int) -> Any:
        async with plain.begin() as session:
            return await session.get(Item, key)

    async def raw(key: int) -> Any:
        async with pool.acquire() as conn:
            return await conn.fetchrow("SELECT id, name, rank FROM bench_items WHERE id = $1", key)

    variants: dict[str, Lookup] = {
        "lms": lms,
        "lms_run": lms_run,
        "sqlalchemy": sqlalchemy,
        "sqlalchemy_default": sqlalchemy_default,
        "asyncpg": raw,
    }
    result = Comparison(
        title=f"primary-key SELECT on PostgreSQL ({lookups} sequential lookups a round)",
        unit="µs/lookup",
        higher_is_better=False,
        names=NAMES,
        baselines=("sqlalchemy", "asyncpg"),
        targets=(Target("lms", "sqlalchemy", 0.9),),
    )
    try:
        for lookup in variants.values():  # warm up: pools, statement caches
            await _measure(lookup, 50, 0)
        for n in range(rounds):
            order = list(variants.items())
            order = order[n % len(order) :] + order[: n % len(order)]  # rotate who goes first
            for key, lookup in order:
                result.add(key, await _measure(lookup, lookups, n * lookups))
    finally:
        await pool.close()
        await default.dispose()
        await db.stop()
        await _teardown(url, schema)
    result.notes.append(
        "same engine: lms and SQLAlchemy share one pool (pre-ping on, read-only "
        "transactions); the default engine has no pre-ping"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the database benchmark; 1 under ``--check`` when the target is missed."""
    options = _options(list(sys.argv[1:] if argv is None else argv))
    url = options.url or os.environ.get(
        "LMS_BENCH_POSTGRES_URL", os.environ.get("LMS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    )
    console = Console()
    reason = postgres_unreachable(url)
    if reason is not None:
        console.print(f"db: skipped, {reason}")
        return 1 if options.check else 0
    rounds = options.rounds or (3 if options.quick else 9)
    lookups = options.lookups or (100 if options.quick else 400)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        result = runner.run(_run(url, rounds, lookups))
    result.render(console)
    if options.save:
        console.print(f"saved {save('db', [result], rounds=rounds, lookups=lookups)}")
    return 0 if (result.met() or not options.check) else 1


if __name__ == "__main__":
    raise SystemExit(main())
