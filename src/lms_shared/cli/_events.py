"""``lms-shared events``: a service's event schemas and its dead-letter queue.

* ``events schema -s SERVICE [DIR]``: the JSON Schema of every event the
  service publishes or consumes, into ``DIR/schemas/<type>.json`` (the
  format ``lms-shared schema check`` compares), and its AsyncAPI 3
  document into ``DIR/asyncapi.json``; without ``DIR``, the AsyncAPI
  document on stdout.
* ``events dlq list | show | replay | purge -s SERVICE``: the dead letters
  the service keeps (``service.events.use_database(service.db)``: its
  database), filtered by ``--type``, ``--group``, ``--reason``,
  ``--since``/``--until`` (an ISO 8601 time, or ``30m``, ``2h``, ``7d``
  ago). ``replay`` publishes them again to their groups through the
  service's transport (``LMS_EVENTS_URL``) at ``--rate`` a second;
  ``--dry-run`` lists what it would replay. ``purge`` needs a filter or
  ``--all``, and asks unless ``--yes``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from lms_shared.cli._loading import load_service
from lms_shared.errors import LmsError
from lms_shared.events import (
    DeadLetter,
    DeadLetterQuery,
    EventBus,
    MemoryDeadLetterStore,
    asyncapi,
)
from lms_shared.service import Service

__all__ = ["events_app", "parse_moment"]

T = TypeVar("T")

events_app = typer.Typer(help="Events: schemas and the dead-letter queue.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter queue of a service.", no_args_is_help=True)
events_app.add_typer(dlq_app, name="dlq")
out = Console()
err = Console(stderr=True)

ServiceOpt = Annotated[
    str,
    typer.Option("--service", "-s", help="import path of the service, e.g. examples.grading.app"),
]
TypeOpt = Annotated[str | None, typer.Option("--type", help="only this event type")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="only this subscription group")]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="only this reason (handler-failed, expired, ...)")
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="dead at or after: ISO 8601 time, or 30m, 2h, 7d ago")
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="dead before (same forms)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]

_AGO = re.compile(r"(\d{1,6})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_moment(text: str, *, now: datetime) -> datetime:
    """An ISO 8601 time with a zone, or ``<n>s|m|h|d`` before ``now``.

    Raises:
        ValueError: neither, or a time without a zone.
    """
    text = text.strip()
    ago = _AGO.fullmatch(text)
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time nor 30m, 2h, 7d") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z or +02:00")
    return moment


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _service(target: str) -> Service:
    try:
        return load_service(target)
    except (ValueError, LmsError) as exc:
        raise _fail(str(exc)) from None


def _bus(owner: Service) -> EventBus:
    bus = owner.events
    if isinstance(bus.dead_letters, MemoryDeadLetterStore):
        err.print(
            f"[yellow]{owner.name} keeps its dead letters in memory[/yellow] (another process "
            "cannot see them): call service.events.use_database(service.db)",
            highlight=False,
        )
    return bus


def _query(
    type: str | None,
    group: str | None,
    reason: str | None,
    since: str | None,
    until: str | None,
    ids: list[str] | None = None,
) -> DeadLetterQuery:
    now = datetime.now(UTC)
    try:
        return DeadLetterQuery(
            type=type,
            group=group,
            reason=reason,
            since=parse_moment(since, now=now) if since else None,
            until=parse_moment(until, now=now) if until else None,
            ids=tuple(ids) if ids else None,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _run(owner: Service, work: Callable[[], Awaitable[T]]) -> T:
    async def go() -> T:
        try:
            return await work()
        finally:
            if any(c.name == "database" for c in owner.lifecycle.components):
                await owner.db.stop()

    try:
        return asyncio.run(go())
    except LmsError as exc:
        raise _fail(str(exc), 1) from None


def _first_line(text: str, width: int = 60) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 1] + "\u2026"


def _table(letters: list[DeadLetter], title: str) -> Table:
    table = Table(title=title)
    table.add_column("id", no_wrap=True)
    for name in ("dead at", "group", "type", "reason", "attempts", "error"):
        table.add_column(name)
    for letter in letters:
        table.add_row(
            letter.id,
            letter.dead_at.strftime("%Y-%m-%d %H:%M:%S"),
            letter.group,
            letter.event_type,
            letter.reason,
            str(letter.attempts),
            _first_line(letter.error),
        )
    return table


@events_app.command("schema")
def schema(
    service: ServiceOpt,
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="write DIR/schemas/<type>.json and DIR/asyncapi.json (default: stdout)"
        ),
    ] = None,
) -> None:
    """Export the JSON Schemas and the AsyncAPI 3 document of a service's events."""
    owner = _service(service)
    bus = owner.events
    document = asyncapi(
        owner.name,
        version=owner.version,
        publishes=bus.published_events,
        consumes=bus.consumed_events,
    )
    text = json.dumps(document, indent=2) + "\n"
    if directory is None:
        typer.echo(text, nl=False)
        return
    folder = directory / "schemas"
    folder.mkdir(parents=True, exist_ok=True)
    schemas = bus.registry.json_schemas()
    for event_type, body in schemas.items():
        (folder / f"{event_type}.json").write_text(
            json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    (directory / "asyncapi.json").write_text(text, encoding="utf-8")
    err.print(f"wrote {len(schemas)} event schemas to {folder} and {directory / 'asyncapi.json'}")


@dlq_app.command("list")
def list_letters(
    service: ServiceOpt,
    type: TypeOpt = None,
    group: GroupOpt = None,
    reason: ReasonOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List dead letters, oldest first."""
    owner = _service(service)
    bus = _bus(owner)
    query = _query(type, group, reason, since, until)

    async def work() -> tuple[list[DeadLetter], int]:
        return (
            await bus.dead_letters.list(query, limit=limit, offset=offset),
            await bus.dead_letters.count(query),
        )

    letters, total = _run(owner, work)
    if as_json:
        typer.echo(json.dumps({"total": total, "items": [x.to_dict() for x in letters]}))
        return
    out.print(_table(letters, f"dead letters of {owner.name}: {len(letters)} of {total}"))


@dlq_app.command("show")
def show(
    service: ServiceOpt,
    letter_id: Annotated[str, typer.Argument(help="the letter's id")],
    as_json: JsonOpt = False,
) -> None:
    """Show one dead letter: the event whole, the error, where it died."""
    owner = _service(service)
    bus = _bus(owner)
    letter = _run(owner, lambda: bus.dead_letters.get(letter_id))
    if letter is None:
        raise _fail(f"no dead letter {letter_id!r}", 1)
    view = letter.to_dict()
    if as_json:
        typer.echo(json.dumps(view))
        return
    for name in ("id", "group", "handler", "reason", "attempts", "event_id", "event_type"):
        out.print(f"[bold]{name}[/bold]: {view[name]}", highlight=False)
    out.print(f"[bold]trace_id[/bold]: {view['trace_id'] or '-'}", highlight=False)
    out.print(f"[bold]dead_at[/bold]: {view['dead_at']}", highlight=False)
    out.print("[bold]error[/bold]:", highlight=False)
    out.print(letter.error, highlight=False, markup=False)
    out.print("[bold]attributes[/bold]:", highlight=False)
    out.print_json(json.dumps(view["attributes"]))
    data = letter.message.data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    out.print("[bold]data[/bold]:", highlight=False)
    if text is None:
        out.print(f"(binary, {len(data)} bytes) {view['data_base64'][:200]}", highlight=False)
    else:
        out.print(text[:4000], highlight=False, markup=False)


@dlq_app.command("replay")
def replay(
    service: ServiceOpt,
    type: TypeOpt = None,
    group: GroupOpt = None,
    reason: ReasonOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    ids: Annotated[list[str] | None, typer.Option("--id", help="only these letters")] = None,
    rate: Annotated[float, typer.Option("--rate", min=0.01, help="letters a second")] = 10.0,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what would go")] = False,
) -> None:
    """Publish dead letters again, to their own group, at a bounded rate."""
    owner = _service(service)
    bus = _bus(owner)
    query = _query(type, group, reason, since, until, ids)

    async def work() -> Any:
        if dry_run:
            return await bus.replay(query, rate=rate, limit=limit, dry_run=True)
        await bus.transport.start()
        try:
            return await bus.replay(query, rate=rate, limit=limit)
        finally:
            await bus.transport.stop()

    report = _run(owner, work)
    if report.dry_run:
        out.print(_table(report.letters, f"would replay {report.count} dead letter(s)"))
        return
    out.print(f"replayed {report.count} dead letter(s) through {bus.transport.name}")
    if report.error:
        raise _fail(f"stopped early: {report.error} (the rest are still dead letters)", 1)


@dlq_app.command("purge")
def purge(
    service: ServiceOpt,
    type: TypeOpt = None,
    group: GroupOpt = None,
    reason: ReasonOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    everything: Annotated[
        bool, typer.Option("--all", help="purge every letter (no filter)")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete dead letters for good."""
    owner = _service(service)
    bus = _bus(owner)
    query = _query(type, group, reason, since, until)
    if query.is_everything and not everything:
        raise _fail("name a filter, or --all to purge every dead letter")
    count = _run(owner, lambda: bus.dead_letters.count(query))
    if count == 0:
        out.print("no dead letters match")
        return
    if not yes and not typer.confirm(f"delete {count} dead letter(s) of {owner.name}?"):
        raise typer.Exit(1)
    purged = _run(owner, lambda: bus.dead_letters.purge(query))
    out.print(f"purged {purged} dead letter(s)")
