"""``lms-shared traces list | show``: traces of the embedded span store, as trees across services.

The store is the state folder's (``LMS_STATE_DIR``), where every service of
a machine keeps its spans while ``LMS_TELEMETRY_URL`` is unset (the demo).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer

from lms_shared.errors import SettingsError
from lms_shared.observability._spanstore import SpanRecord, SpanStore
from lms_shared.settings import load_settings

__all__ = ["render_tree", "traces_app"]

traces_app = typer.Typer(help="Traces of the embedded span store.", no_args_is_help=True)


def _store() -> SpanStore:
    try:
        return SpanStore.in_state_dir(load_settings().state_dir)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def render_tree(spans: list[SpanRecord]) -> list[str]:
    """One line a span, children indented under their parent, oldest first.

    A span whose parent is not stored (a caller outside the store, or a
    parent not exported yet) is shown as a root.
    """
    ids = {s.span_id for s in spans}
    first = min((s.start_ns for s in spans), default=0)

    def walk(node: SpanRecord, depth: int) -> Iterator[str]:
        offset = (node.start_ns - first) / 1e6
        mark = " !" if node.status == "error" else ""
        yield (
            f"{'  ' * depth}{node.service}: {node.name}  "
            f"+{offset:.1f} ms, {node.duration_ms:.1f} ms{mark}"
        )
        for child in spans:
            if child.parent_id == node.span_id:
                yield from walk(child, depth + 1)

    roots = [s for s in spans if s.parent_id not in ids]
    return [line for root in roots for line in walk(root, 0)]


@traces_app.command("list")
def list_traces(
    service: Annotated[str | None, typer.Option("--service", help="traces touching it")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The newest traces: id, root span, services, spans, duration."""
    found = _store().traces(limit=limit, service=service)
    if as_json:
        typer.echo(json.dumps([asdict(summary) for summary in found]))
        return
    if not found:
        typer.echo("no traces stored yet", err=True)
        return
    for summary in found:
        when = datetime.fromtimestamp(summary.start_ns / 1e9, UTC).strftime("%H:%M:%S")
        errors = f", {summary.errors} errors" if summary.errors else ""
        typer.echo(
            f"{summary.trace_id}  {when}  {summary.root}  [{', '.join(summary.services)}]  "
            f"{summary.spans} spans, {summary.duration_ms:.1f} ms{errors}"
        )


@traces_app.command("show")
def show_trace(
    trace_id: Annotated[str, typer.Argument(help="32 hex digits")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One trace as a tree across services."""
    if len(trace_id) != 32 or any(c not in "0123456789abcdefABCDEF" for c in trace_id):
        typer.echo(f"error: {trace_id!r} is not a trace id (32 hex digits)", err=True)
        raise typer.Exit(2)
    spans = _store().trace(trace_id)
    if not spans:
        typer.echo(f"error: no spans of trace {trace_id.lower()} are stored", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps([asdict(span) for span in spans], default=str))
        return
    typer.echo(f"trace {trace_id.lower()}")
    for line in render_tree(spans):
        typer.echo(line)
