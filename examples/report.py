"""How the demo looks on the console: step lines and summary tables."""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from examples.driver import StepResult
from examples.processes import ServiceProcess
from lms_shared.redaction import redact_url

__all__ = ["data_line", "services_table", "step_line", "stopped_line", "summary_table"]

MARKS = {"OK": "[green]✓[/]", "FAILED": "[red]✗[/]", "SKIPPED": "[yellow]-[/]"}
COLOURS = {"OK": "green", "FAILED": "red", "SKIPPED": "yellow"}


def step_line(number: int, result: StepResult) -> Table:
    """One finished step: mark, number, title, summary and duration."""
    line = Table.grid(padding=(0, 1), expand=True)
    line.add_column(width=2)
    line.add_column(justify="right", width=3)
    line.add_column(width=30, style="bold")
    line.add_column(ratio=1, style=COLOURS[result.result])
    line.add_column(justify="right", width=7, style="dim")
    line.add_row(
        MARKS[result.result],
        f"{number}.",
        result.title,
        result.summary,
        f"{result.seconds * 1000:.0f} ms",
    )
    return line


def summary_table(results: Sequence[StepResult]) -> Table:
    """The summary: one row per step with its result and duration."""
    table = Table(title="Scenario summary", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("result")
    table.add_column("duration", justify="right")
    for number, result in enumerate(results, 1):
        table.add_row(
            str(number),
            result.title,
            f"[{COLOURS[result.result]}]{result.result}[/]",
            f"{result.seconds * 1000:.0f} ms",
        )
    return table


def services_table(services: Sequence[ServiceProcess]) -> Table:
    """Each service's API docs URL and log file."""
    table = Table(title="Services", title_justify="left")
    table.add_column("service")
    table.add_column("API docs")
    table.add_column("log", overflow="fold")
    for svc in services:
        table.add_row(svc.name, f"{svc.url}/docs", str(svc.log_path))
    return table


def stopped_line(codes: Mapping[str, int]) -> str:
    """Which services stopped, flagging any that did not stop cleanly."""
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly
    clean = {0, -signal.SIGTERM}
    return "stopped " + ", ".join(
        name if code in clean else f"{name} ([red]exit code {code}[/])"
        for name, code in codes.items()
    )


def data_line(database_url: str | None, schema: str | None, state_dir: Path) -> str:
    """Where the services keep their data, and how to start over."""
    if database_url is None:
        folder = escape(str(state_dir))
        return (
            f"[bold]Data:[/] one SQLite file per service in {folder}, kept between runs "
            f"(delete {folder}/*.sqlite3* to start over)."
        )
    where = escape(redact_url(database_url)) + (f" (schema {escape(schema)})" if schema else "")
    return f"[bold]Data:[/] {where}, kept between runs."
