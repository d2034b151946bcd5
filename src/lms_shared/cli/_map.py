"""``lms-shared map``: who calls whom, who publishes and consumes what, and the drift.

Declared edges come from the discovery registry (``LMS_DISCOVERY_URL``,
the local file of ``LMS_STATE_DIR`` when unset): every registered instance
carries its service's declarations in its metadata. Observed edges come
from the embedded span store of the state folder (the CLIENT, PRODUCER and
CONSUMER spans of the last ``--since``). See
:mod:`lms_shared.observability._depmap`.

``--json``, ``--mermaid`` and ``--dot`` write the map to files; the
terminal gets one line per edge and the drift. ``--strict`` exits 1 when
there is drift (a CI gate on a staging platform).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Annotated

import typer

from lms_shared.clock import SystemClock
from lms_shared.discovery import LocalRegistry, RegistryUnavailable, registry_from_url
from lms_shared.errors import SettingsError
from lms_shared.observability._depmap import Declarations, DependencyMap, observed_edges
from lms_shared.observability._spanstore import SpanStore
from lms_shared.settings import Settings, load_settings

__all__ = ["build_map", "dependency_map"]

_SINCE = re.compile(r"(\d{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


async def _declarations(settings: Settings, url: str | None) -> list[Declarations]:
    registry = registry_from_url(
        url if url is not None else settings.discovery_url,
        clock=SystemClock(),
        state_dir=settings.state_dir,
        poll_interval=settings.discovery_poll,
        timeout=settings.discovery_timeout,
    )
    if isinstance(registry, LocalRegistry) and not registry.path.exists():
        return []  # nothing registered: do not create the file
    await registry.start()
    try:
        found: list[Declarations] = []
        for name in await registry.list_services():
            for instance in await registry.lookup(name, include_unhealthy=True):
                found.append(Declarations.from_metadata(instance.service, instance.metadata))
        return found
    finally:
        await registry.stop()


def build_map(
    settings: Settings, *, since_seconds: float | None = None, url: str | None = None
) -> DependencyMap:
    """The platform's map from its registry and its embedded span store.

    Raises:
        RegistryUnavailable: the registry does not answer.
    """
    declared = asyncio.run(_declarations(settings, url))
    since_ns = 0 if since_seconds is None else time.time_ns() - int(since_seconds * 1e9)
    spans = SpanStore.in_state_dir(settings.state_dir).dependency_spans(since_ns=since_ns)
    return DependencyMap.build(declared, observed_edges(spans))


def dependency_map(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write the map as JSON here")
    ] = None,
    mermaid_path: Annotated[
        Path | None, typer.Option("--mermaid", help="write a Mermaid flowchart here")
    ] = None,
    dot_path: Annotated[
        Path | None, typer.Option("--dot", help="write a Graphviz DOT graph here")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="observed in the last 30m, 6h, 2d...")
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="the registry (default LMS_DISCOVERY_URL)")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="exit 1 when declarations and traffic disagree")
    ] = False,
) -> None:
    """Print the dependency map (calls, publications, subscriptions) and its drift."""
    seconds: float | None = None
    if since is not None:
        match = _SINCE.fullmatch(since.strip())
        if match is None:
            typer.echo("error: --since is a number and a unit: 90s, 30m, 6h, 2d", err=True)
            raise typer.Exit(2)
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    try:
        found = build_map(load_settings(), since_seconds=seconds, url=url)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except RegistryUnavailable as exc:
        typer.echo(f"error: the registry does not answer: {exc}", err=True)
        raise typer.Exit(1) from None
    for path, text in (
        (json_path, json.dumps(found.to_json(), indent=2) + "\n"),
        (mermaid_path, found.to_mermaid()),
        (dot_path, found.to_dot()),
    ):
        if path is not None:
            path.write_text(text, encoding="utf-8")
    lines = found.to_text()
    if not lines:
        typer.echo("no dependencies known: no service registered and no traced calls", err=True)
        return
    for line in lines:
        typer.echo(line)
    undeclared, unused = found.undeclared(), found.unused()
    typer.echo(
        f"{len(found.services)} services, {len(found.events)} event types, "
        f"{len(found.edges)} edges; drift: {len(undeclared)} undeclared, {len(unused)} unused"
    )
    if strict and (undeclared or unused):
        raise typer.Exit(1)
