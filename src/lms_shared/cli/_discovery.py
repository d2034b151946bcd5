"""``lms-shared discovery list``: the instances the registry knows, with health and age.

The registry is ``LMS_DISCOVERY_URL`` (the local SQLite file under
``LMS_STATE_DIR`` when unset) or ``--url``. Unhealthy instances are shown
too, marked. Kubernetes DNS cannot enumerate services: name them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lms_shared.clock import SystemClock
from lms_shared.discovery import (
    Instance,
    LocalRegistry,
    RegistryUnavailable,
    registry_from_url,
)
from lms_shared.errors import SettingsError
from lms_shared.settings import load_settings

__all__ = ["discovery_app"]

discovery_app = typer.Typer(
    help="Service discovery: what the registry knows.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)


@discovery_app.callback()
def _group() -> None:
    """Service discovery: what the registry knows."""  # keeps ``list`` a sub-command


def age(registered_at: datetime | None, now: datetime) -> str:
    """``"42s"``, ``"5m"``, ``"3h"``, ``"2d"``, or ``"-"`` when unknown."""
    if registered_at is None:
        return "-"
    seconds = max(0, int((now - registered_at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


async def _collect(url: str | None, services: list[str]) -> tuple[str, list[Instance]]:
    settings = load_settings()
    clock = SystemClock()
    registry = registry_from_url(
        url if url is not None else settings.discovery_url,
        clock=clock,
        state_dir=settings.state_dir,
        poll_interval=settings.discovery_poll,
        timeout=settings.discovery_timeout,
    )
    if isinstance(registry, LocalRegistry) and not registry.path.exists():
        return registry.where, []  # nothing registered yet; do not create the file
    await registry.start()
    try:
        names = services or await registry.list_services()
        found: list[Instance] = []
        for name in names:
            found += await registry.lookup(name, include_unhealthy=True)
        return f"{registry.name} at {registry.where}", found
    finally:
        await registry.stop()


@discovery_app.command("list")
def list_instances(
    services: Annotated[
        list[str] | None, typer.Argument(help="services to show (default: every one)")
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="registry URL (default: LMS_DISCOVERY_URL)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Show every instance with its address, version, zone, health and age."""
    try:
        where, instances = asyncio.run(_collect(url, list(services or [])))
    except (SettingsError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except RegistryUnavailable as exc:
        err.print(f"[red]registry unavailable:[/red] {exc}")
        raise typer.Exit(1) from None
    now = SystemClock().now()
    rows: list[dict[str, Any]] = [
        {
            "service": i.service,
            "id": i.id,
            "endpoint": i.endpoint,
            "version": i.version,
            "zone": i.zone,
            "health": "healthy" if i.healthy else "unhealthy",
            "age": age(i.registered_at, now),
            "registered_at": i.registered_at.isoformat() if i.registered_at else None,
        }
        for i in instances
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(
        "service",
        "id",
        "endpoint",
        "version",
        "zone",
        "health",
        "age",
        title=f"instances ({where})",
    )
    for row in rows:
        health = row["health"] if row["health"] == "healthy" else f"[red]{row['health']}[/red]"
        table.add_row(
            row["service"],
            row["id"],
            row["endpoint"],
            row["version"] or "-",
            row["zone"] or "-",
            health,
            row["age"],
        )
    out.print(table)
    if not rows:
        out.print("no instances")
