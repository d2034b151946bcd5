"""``lms-shared db``: a service's migrations (upgrade, downgrade, revision, current, history).

Name the service by import path (``examples.courses.app:service``): its
``service.db`` knows the migrations folder (``use_migrations``) and the
``LMS_DATABASE_URL`` settings. Or give ``--migrations DIR`` and ``--url``
(and ``--name``, which picks the version table) for a folder on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from lms_shared.cli._loading import load_app
from lms_shared.db import Database, DatabaseConfig
from lms_shared.errors import LmsError
from lms_shared.service import Service
from lms_shared.settings import load_settings

if TYPE_CHECKING:
    from lms_shared.db import Database, Migrations

__all__ = ["db_app"]

T = TypeVar("T")

db_app = typer.Typer(help="Database migrations of a service.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

ServiceArg = Annotated[
    str | None,
    typer.Option("--service", "-s", help="import path of the service, e.g. examples.courses.app"),
]
MigrationsOpt = Annotated[
    Path | None, typer.Option("--migrations", help="migrations folder (without --service)")
]
UrlOpt = Annotated[
    str | None, typer.Option("--url", help="database URL (default: LMS_DATABASE_URL)")
]
NameOpt = Annotated[str, typer.Option("--name", help="service name: the version table's suffix")]


def _resolve(
    service: str | None, migrations: Path | None, url: str | None, name: str
) -> tuple[Database, Migrations]:
    try:
        return _find(service, migrations, url, name)
    except (LmsError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _find(
    service: str | None, migrations: Path | None, url: str | None, name: str
) -> tuple[Database, Migrations]:

    if service is not None:
        owner = getattr(load_app(service).state, "service", None)
        if not isinstance(owner, Service):
            raise typer.BadParameter(f"{service!r} is not an lms-shared service", param_hint="-s")
        db = owner.db
        if url is not None:
            db = Database(DatabaseConfig.for_url(url, service=owner.name), clock=owner.clock)
            db.migrations = owner.db.migrations
        if migrations is not None:
            db.use_migrations(migrations, metadata=getattr(db.migrations, "metadata", None))
        if db.migrations is None:
            raise typer.BadParameter(
                "the service has no migrations: call service.db.use_migrations(folder)",
                param_hint="-s",
            )
        return db, db.migrations
    if migrations is None:
        raise typer.BadParameter("give --service, or --migrations (and --url)")
    if url is None:
        db = Database.from_settings(name, load_settings())
    else:
        db = Database(DatabaseConfig.for_url(url, service=name))
    return db, db.use_migrations(migrations)


def _run(db: Database, action: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await action()
        finally:
            await db.stop()

    try:
        return asyncio.run(main())
    except (LmsError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@db_app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
    service: ServiceArg = None,
    migrations: MigrationsOpt = None,
    url: UrlOpt = None,
    name: NameOpt = "app",
) -> None:
    """Upgrade the database (to head by default), under the migration lock."""
    db, migs = _resolve(service, migrations, url, name)
    applied = _run(db, lambda: migs.upgrade(db.engine, revision))
    out.print(f"applied: {', '.join(applied)}" if applied else "already up to date")


@db_app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="target revision: an id, -1 or base")],
    service: ServiceArg = None,
    migrations: MigrationsOpt = None,
    url: UrlOpt = None,
    name: NameOpt = "app",
) -> None:
    """Downgrade the database to a revision."""
    db, migs = _resolve(service, migrations, url, name)
    reverted = _run(db, lambda: migs.downgrade(db.engine, revision))
    out.print(f"reverted: {', '.join(reverted)}" if reverted else "nothing to revert")


@db_app.command()
def current(
    service: ServiceArg = None,
    migrations: MigrationsOpt = None,
    url: UrlOpt = None,
    name: NameOpt = "app",
) -> None:
    """Print the revision the database is at."""
    db, migs = _resolve(service, migrations, url, name)
    revisions = _run(db, lambda: migs.current(db.engine))
    heads = set(migs.heads())
    for rev in revisions:
        out.print(f"{rev} (head)" if rev in heads else rev)
    if not revisions:
        out.print("(no revision applied)")


@db_app.command()
def history(
    service: ServiceArg = None,
    migrations: MigrationsOpt = None,
    url: UrlOpt = None,
    name: NameOpt = "app",
) -> None:
    """List the revisions, newest first."""
    _, migs = _resolve(service, migrations, url, name)
    try:
        revisions = migs.history()
    except LmsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table("revision", "follows", "message", title=f"migrations in {migs.directory}")
    for rev in revisions:
        label = f"{rev.revision} (head)" if rev.is_head else rev.revision
        table.add_row(label, ", ".join(rev.down_revisions) or "-", rev.message)
    out.print(table)


@db_app.command()
def revision(
    message: Annotated[str, typer.Option("--message", "-m", help="what the revision does")],
    autogenerate: Annotated[
        bool, typer.Option("--autogenerate", help="compare the models with the database")
    ] = False,
    service: ServiceArg = None,
    migrations: MigrationsOpt = None,
    url: UrlOpt = None,
    name: NameOpt = "app",
) -> None:
    """Write a new revision file (empty, or autogenerated from the models)."""
    db, migs = _resolve(service, migrations, url, name)
    engine = db.engine if autogenerate else None
    path = _run(db, lambda: migs.revision(message, autogenerate=autogenerate, engine=engine))
    out.print(f"wrote {path}")
