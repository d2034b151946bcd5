"""``lms-shared logs``: search the log lines of every service in the embedded store.

With ``LMS_TELEMETRY_URL`` unset, every service keeps its lines in
``<LMS_STATE_DIR>/telemetry/logs.sqlite3``; this command finds them by
service, trace id, request id, level (that level and above) and time, and
prints them oldest first, one line each, or as JSON lines (``--json``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from lms_shared.errors import SettingsError
from lms_shared.observability import LogStore, StoredLog
from lms_shared.redaction import redact_url
from lms_shared.settings import LOG_LEVELS, load_settings

__all__ = ["logs", "parse_time"]

_DURATION = re.compile(r"(\d{1,9})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
# printed in the columns of a line, not again as key=value
_SHOWN = frozenset({"timestamp", "level", "service", "logger_name", "event", "version"})


def parse_time(text: str, *, now: float | None = None) -> int:
    """A point in time as Unix nanoseconds: ``"15m"`` (ago), ``"2h"``, ``"1d"`` or ISO 8601.

    Raises:
        ValueError: neither a duration nor an ISO 8601 time.
    """
    found = _DURATION.fullmatch(text.strip())
    if found:
        seconds = int(found.group(1)) * _UNITS[found.group(2)]
        return int(((now if now is not None else time.time()) - seconds) * 1e9)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text[:40]!r} is neither a duration (30s, 15m, 2h, 1d) nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1e9)


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= 120 else text[:117] + "..."


def format_line(found: StoredLog) -> str:
    """One stored line for people: time, service, level, logger, event, then its fields."""
    when = found.time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    extra = " ".join(
        f"{key}={_value(value)}"
        for key, value in found.fields.items()
        if key not in _SHOWN and value is not None
    )
    head = f"{when} {found.service:<12} {found.level.upper():<8} {found.logger or '-'}:"
    return f"{head} {found.event or ''}" + (f"  {extra}" if extra else "")


def logs(
    service: Annotated[
        list[str] | None,
        typer.Option("--service", "-s", help="lines of this service (repeat for more)"),
    ] = None,
    trace: Annotated[
        str | None, typer.Option("--trace", "-t", help="lines written in this trace id")
    ] = None,
    request: Annotated[
        str | None, typer.Option("--request", "-r", help="lines written for this request id")
    ] = None,
    level: Annotated[
        str | None,
        typer.Option("--level", "-l", help="this level and above: " + ", ".join(LOG_LEVELS)),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="lines from then on: 30s, 15m, 2h, 1d or an ISO 8601 time")
    ] = None,
    until: Annotated[str | None, typer.Option(help="lines before then (same forms)")] = None,
    limit: Annotated[int, typer.Option(help="the newest lines at most", min=1, max=100_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False,
    state_dir: Annotated[
        Path | None, typer.Option(help="the state folder (default: LMS_STATE_DIR)")
    ] = None,
) -> None:
    """Search the log lines of every service (the embedded store of the state folder)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if level is not None and level.lower() not in LOG_LEVELS:
        typer.echo(f"error: --level must be one of {', '.join(LOG_LEVELS)}", err=True)
        raise typer.Exit(2)
    if trace is not None and not _TRACE_ID.fullmatch(trace):
        typer.echo("error: --trace is a trace id of 32 hex digits", err=True)
        raise typer.Exit(2)
    try:
        since_ns = parse_time(since) if since else None
        until_ns = parse_time(until) if until else None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if settings.telemetry_url:
        typer.echo(
            f"note: LMS_TELEMETRY_URL is set: services export their logs to "
            f"{redact_url(settings.telemetry_url)}; this store holds only lines written "
            "while it was unset",
            err=True,
        )
    store = LogStore.in_state_dir(state_dir or settings.state_dir)
    found = store.search(
        services=service or (),
        trace_id=trace,
        request_id=request,
        level=level,
        since_ns=since_ns,
        until_ns=until_ns,
        limit=limit,
    )
    store.close()
    if not found and not as_json:
        typer.echo(f"no log lines match (store: {store.path})", err=True)
        return
    for line in found:
        typer.echo(orjson.dumps(line.fields).decode() if as_json else format_line(line))
