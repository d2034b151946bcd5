"""Commands: ``version``, ``settings``, ``serve``, ``openapi export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lms_shared import __version__
from lms_shared.cli._alerts import alerts_app
from lms_shared.cli._apikey import apikey_app
from lms_shared.cli._db import db_app
from lms_shared.cli._discovery import discovery_app
from lms_shared.cli._events import events_app
from lms_shared.cli._loading import load_app, load_service
from lms_shared.cli._logs import logs
from lms_shared.cli._map import dependency_map
from lms_shared.cli._new import new
from lms_shared.cli._schema import schema_app
from lms_shared.cli._serve import serve
from lms_shared.cli._token import token_app
from lms_shared.cli._traces import traces_app
from lms_shared.errors import SettingsError
from lms_shared.settings import load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="lms-shared",
    help="The LMS platform's shared chassis: inspect settings, export API documents.",
    no_args_is_help=True,
    add_completion=False,
)
openapi_app = typer.Typer(help="OpenAPI documents of services.", no_args_is_help=True)
app.add_typer(openapi_app, name="openapi")
app.add_typer(schema_app, name="schema")
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")
app.add_typer(discovery_app, name="discovery")
app.add_typer(events_app, name="events")
app.add_typer(alerts_app, name="alerts")
app.add_typer(token_app, name="token")
app.add_typer(traces_app, name="traces")
app.command()(serve)
app.command()(new)
app.command()(logs)
app.command(name="map")(dependency_map)

out = Console()
err = Console(stderr=True)


@app.command()
def version() -> None:
    """Print the installed lms-shared version."""

    out.print(f"lms-shared {__version__}")


@app.command()
def settings(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    service: Annotated[
        str | None,
        typer.Option(
            "--service",
            metavar="MODULE:SERVICE",
            help="print what this service runs with (its code may change the settings)",
        ),
    ] = None,
) -> None:
    """Print the effective settings (environment, .env, secrets dir), secrets redacted."""
    try:
        found = load_settings() if service is None else load_service(service).settings
        effective = found.redacted()
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        out.print_json(json.dumps(effective, default=str))
        return
    table = Table("variable", "value", title="effective settings")
    for name, value in effective.items():
        table.add_row(f"LMS_{name.upper()}", "" if value is None else str(value))
    out.print(table)


@openapi_app.command("export")
def openapi_export(
    service: Annotated[str, typer.Argument(help="import path, e.g. examples.courses.app:service")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")
    ] = None,
) -> None:
    """Write a service's OpenAPI 3.1 document as JSON."""
    try:
        document = load_app(service).openapi()
    except (ValueError, SettingsError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    err.print(f"wrote {output} ({len(document.get('paths', {}))} paths)")


def main() -> None:
    """Entry point of the ``lms-shared`` script."""
    app()
