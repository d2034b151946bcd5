"""``lms-shared apikey``: create, list, rotate and revoke a service's API keys.

Keys live in the service's database (``lms_api_keys``, created if
missing). Name the service by its name (``courses``: the database comes
from the ``LMS_DATABASE_*`` settings) or by import path
(``examples.courses.app:service``: its own ``service.db``), or give
``--url``. A new key is printed once and never stored: copy it then.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from lms_shared.auth import ApiKeys, DatabaseApiKeyStore
from lms_shared.cli._loading import load_app
from lms_shared.clock import SystemClock
from lms_shared.db import Database, DatabaseConfig
from lms_shared.errors import LmsError
from lms_shared.service import Service
from lms_shared.settings import load_settings

if TYPE_CHECKING:
    from lms_shared.auth import ApiKey, ApiKeys
    from lms_shared.db import Database

__all__ = ["apikey_app"]

T = TypeVar("T")

apikey_app = typer.Typer(help="API keys of a service (kept in its database).", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

ServiceOpt = Annotated[
    str,
    typer.Option(
        "--service", "-s", help="service name (courses) or import path (examples.courses.app)"
    ),
]
UrlOpt = Annotated[
    str | None, typer.Option("--url", help="database URL (default: the service's settings)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _open(service: str, url: str | None) -> tuple[Database, ApiKeys]:

    if re.fullmatch(r"[a-z0-9-]+", service):
        settings = load_settings()
        name, db = service, Database.from_settings(service, settings)
    else:
        owner = getattr(load_app(service).state, "service", None)
        if not isinstance(owner, Service):
            raise typer.BadParameter(f"{service!r} is not an lms-shared service", param_hint="-s")
        name, settings, db = owner.name, owner.settings, owner.db
    if url is not None:
        db = Database(DatabaseConfig.for_url(url, service=name))
    keys = ApiKeys(
        DatabaseApiKeyStore(db), clock=SystemClock(), prefix=settings.auth_api_key_prefix
    )
    return db, keys


def _run(service: str, url: str | None, action: Callable[[ApiKeys], Awaitable[T]]) -> T:
    try:
        db, keys = _open(service, url)
    except (LmsError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    async def main() -> T:
        try:
            await keys.store.create_table()  # type: ignore[attr-defined]
            return await action(keys)
        finally:
            await db.stop()

    try:
        return asyncio.run(main())
    except (LmsError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _describe(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "owner": key.owner,
        "tenant": key.tenant,
        "roles": sorted(key.roles),
        "scopes": None if key.scopes is None else sorted(key.scopes),
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "replaced_by": key.replaced_by,
    }


@apikey_app.command()
def create(
    service: ServiceOpt,
    name: Annotated[str, typer.Option("--name", help="what the key is for (ci-deploy)")],
    owner: Annotated[str, typer.Option("--owner", help="the subject it acts for")],
    role: Annotated[list[str] | None, typer.Option("--role", help="a role (repeat)")] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="limit to a permission pattern (repeat)")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="its organization")] = None,
    days: Annotated[float | None, typer.Option("--expires-in-days", min=0.001)] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it once."""
    expires = timedelta(days=days) if days is not None else None
    issued = _run(
        service,
        url,
        lambda keys: keys.create(
            name, owner=owner, roles=role or (), scopes=scope, tenant=tenant, expires_in=expires
        ),
    )
    if as_json:
        typer.echo(json.dumps({"key": issued.secret, **_describe(issued.key)}))
        return
    out.print(f"API key {issued.key.id} created; copy it now, it is not shown again:")
    typer.echo(issued.secret)


@apikey_app.command("list")
def list_keys(
    service: ServiceOpt,
    owner: Annotated[str | None, typer.Option("--owner", help="only this owner's keys")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="include revoked and expired")] = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List keys (never their secrets)."""
    keys = _run(service, url, lambda k: k.list(owner=owner, include_inactive=show_all))
    if as_json:
        typer.echo(json.dumps([_describe(k) for k in keys]))
        return
    table = Table("name", "owner", "roles", "scopes", "expires", "last used")
    table.add_column("state", no_wrap=True)
    table.add_column("id", no_wrap=True)
    for key in keys:
        state = "revoked" if key.revoked_at else ("rotated" if key.replaced_by else "active")
        table.add_row(
            key.name,
            key.owner,
            ",".join(sorted(key.roles)) or "-",
            "-" if key.scopes is None else ",".join(sorted(key.scopes)),
            key.expires_at.isoformat(timespec="seconds") if key.expires_at else "never",
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never",
            state,
            key.id,
        )
    out.print(table)


@apikey_app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (the part after the prefix)")],
    service: ServiceOpt,
    url: UrlOpt = None,
) -> None:
    """Revoke a key now."""
    key = _run(service, url, lambda k: k.revoke(key_id))
    out.print(f"API key {key.id} ({key.name}) revoked")


@apikey_app.command()
def rotate(
    key_id: Annotated[str, typer.Argument(help="the key's id")],
    service: ServiceOpt,
    overlap: Annotated[
        float, typer.Option("--overlap-hours", min=0, help="hours the old key keeps working")
    ] = 24.0,
    url: UrlOpt = None,
) -> None:
    """Replace a key; the old one keeps working for the overlap, then expires."""
    issued = _run(service, url, lambda k: k.rotate(key_id, overlap=timedelta(hours=overlap)))
    out.print(f"API key {issued.key.id} replaces {key_id}; copy it now, it is not shown again:")
    typer.echo(issued.secret)
