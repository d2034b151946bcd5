"""``lms-shared schema``: export the JSON Schemas of the data contracts and check changes.

``export DIR`` writes one ``<schema name>.json`` per model (the platform's
shared DTOs, or a service's own registry with ``--registry``). ``check OLD
NEW`` compares two exports, lists every backward and forward
incompatibility, and exits 1 when one is a break: a change that the mode
counts (``full``: both directions) in a schema whose version was not
bumped. A CI job exports the schemas of the base branch and of the change,
then runs ``check``.
"""

from __future__ import annotations

import importlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from lms_shared.models import SchemaRegistry, compare_exports, shared_schemas
from lms_shared.models.compat import read_export

if TYPE_CHECKING:
    from lms_shared.models import SchemaRegistry

__all__ = ["schema_app"]

schema_app = typer.Typer(
    help="JSON Schemas of the data contracts: export, compatibility check.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


class Mode(StrEnum):
    """Which incompatibilities fail the check."""

    FULL = "full"
    BACKWARD = "backward"
    FORWARD = "forward"


def _registry(target: str | None) -> SchemaRegistry:

    if target is None:
        return shared_schemas()
    module_name, _, attribute = target.partition(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    found = getattr(module, attribute or "schemas", None)
    if callable(found) and not isinstance(found, SchemaRegistry):
        try:
            found = found()
        except TypeError as exc:
            raise ValueError(f"{target!r} is not a function without arguments: {exc}") from None
    if not isinstance(found, SchemaRegistry):
        raise ValueError(f"{target!r} names no SchemaRegistry (or function returning one)")
    return found


@schema_app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(help="folder to write <schema>.json files into")],
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            "-r",
            help="module:attribute of a SchemaRegistry (default: the shared lms.* models)",
        ),
    ] = None,
    clean: Annotated[
        bool, typer.Option("--clean", help="delete the folder's *.json files first")
    ] = False,
) -> None:
    """Write the JSON Schema of every registered model."""
    try:
        schemas = _registry(registry)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if clean and directory.is_dir():
        for old in directory.glob("*.json"):
            old.unlink()
    written = schemas.export(directory)
    err.print(f"wrote {len(written)} schemas to {directory}")


@schema_app.command("check")
def check(
    old: Annotated[Path, typer.Argument(help="the export before the change")],
    new: Annotated[Path, typer.Argument(help="the export after the change")],
    mode: Annotated[
        Mode, typer.Option("--mode", help="which incompatibilities fail the check")
    ] = Mode.FULL,
) -> None:
    """Report compatibility breaks between two exports; exit 1 on a break."""

    try:
        before, after = read_export(old), read_export(new)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    changes = compare_exports(before, after)
    counted = {"backward", "forward"} if mode is Mode.FULL else {mode.value}
    breaks = [c for c in changes if c.direction in counted and not c.allowed]
    added = sorted(set(after) - set(before))
    for change in changes:
        if change.direction not in counted:
            verdict = "not checked"
        elif change.allowed:
            verdict = "[yellow]allowed (version bumped)[/yellow]"
        else:
            verdict = "[red]BREAK[/red]"
        out.print(
            f"{verdict} {change.schema} ({change.direction}) {change.path}: {change.message}",
            soft_wrap=True,
            highlight=False,
        )
    for name in added:
        out.print(f"new schema: {name}", highlight=False)
    summary = f"{len(before)} schemas checked ({mode.value}): {len(breaks)} breaking change(s)"
    if breaks:
        out.print(f"[red]{summary}[/red]")
        raise typer.Exit(1)
    out.print(f"[green]{summary}[/green]")
