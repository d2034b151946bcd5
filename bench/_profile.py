"""Profile an ASGI app in process and print its top costs (cProfile)."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import pstats
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from starlette.types import ASGIApp

from bench._asgi import drive, running
from bench._load import loop_factory
from lms_shared.observability import reset_logging

__all__ = ["profile"]


def profile(
    name: str,
    build: Callable[[], ASGIApp],
    scope: dict[str, Any],
    count: int,
    console: Console,
    log: Path,
) -> None:
    """Profile ``count`` requests of ``scope`` (after a warm-up); print the top 25.

    The app's standard output (its logs) goes to ``log``.
    """
    profiler = cProfile.Profile()

    async def run() -> None:
        app = build()
        async with running(app):
            await drive(app, scope, max(count // 5, 1))
            profiler.enable()
            await drive(app, scope, count)
            profiler.disable()

    try:
        with (
            log.open("w") as out,
            contextlib.redirect_stdout(out),
            asyncio.Runner(loop_factory=loop_factory()) as runner,
        ):
            runner.run(run())
    finally:
        reset_logging()
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(25)
        table = text.getvalue()
        console.print(f"[bold]{name}: {count:,} requests, top 25 by {order}[/bold]")
        console.print(table[table.index("   ncalls") :], highlight=False, markup=False)
