"""``make demo``: run the example LMS platform and a scripted scenario.

Starts identity, courses, enrollments and grading as four uvicorn
processes (logs under ``<LMS_STATE_DIR>/demo/``), waits until each is
ready, plays :mod:`examples.scenario` against them and prints a summary.
Without ``--once`` the services then stay up until Ctrl-C (or SIGTERM);
either way every child process is stopped before the runner exits.

Each service keeps its data in its own database: by default a SQLite file
in the state folder (``.lms/identity.sqlite3``, ...), or wherever
``LMS_DATABASE_URL`` points. The runner starts the services with
``LMS_DATABASE_MIGRATE_ON_START=true``, so each one brings its tables up to
date before it serves. Data is kept between runs and the scenario plays on
top of it (every run is a new term); delete the files to start over.

Each service registers itself in the local discovery registry of the
state folder (``LMS_DISCOVERY_ADDRESS``/``LMS_DISCOVERY_PORT``); enrollments
and grading find identity, courses and enrollments there, through
``service.client`` (see :mod:`examples.upstream`).

Authentication is wired with the ``LMS_AUTH_*`` settings, made fresh for
each run (:mod:`examples.access`): identity gets a new signing key and each
calling service a client secret; the others verify tokens against
identity's JWKS. Tokens of an earlier run are therefore not accepted. Identity encrypts
users' phone numbers with a keyring (``LMS_ENCRYPTION_KEYS``) made at the
first run and kept beside the data, in ``<state>/demo/encryption-keys``.

Usage: ``python -m examples.demo [--once] [--start-timeout SECONDS]``
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

import httpx
from rich.console import Console
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from examples.access import auth_environ, new_platform_secrets
from examples.driver import StepResult, run_step
from examples.processes import Platform, PlatformError, ServiceProcess
from examples.report import data_line, services_table, step_line, stopped_line, summary_table
from examples.scenario import STEPS, Scenario, ServiceControl
from examples.telemetry import map_lines, trace_lines, wait_for_trace
from examples.topology import HOST, SERVICES, port_base, service_port
from lms_shared import Settings, SettingsError, load_settings
from lms_shared.security import new_key_spec

__all__ = ["main", "run_scenario"]

ROOT = Path(__file__).resolve().parent.parent
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo", description="Run the example LMS platform."
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="exit after the scenario (code 0 only if every step worked)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long the services may take to become ready (default: 60)",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def run_scenario(
    console: Console,
    urls: Mapping[str, str],
    *,
    transport: httpx.BaseTransport | None = None,
    played: list[Scenario] | None = None,
    services: ServiceControl | None = None,
) -> list[StepResult]:
    """Play every step with a progress bar; after a failure the rest are skipped.

    Args:
        console: where the steps are reported.
        urls: base URL per service.
        transport: how requests reach the services, instead of the network
            (tests play the scenario against services in-process).
        played: the scenario (its ids and trace id) is appended here.
        services: stops and starts the services (the step that stops courses
            needs it; without it that step says it cannot).
    """
    results: list[StepResult] = []
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with (
        httpx.Client(timeout=10.0, transport=transport) as client,
        Progress(*columns, console=console, transient=True) as progress,
    ):
        scenario = Scenario(client, urls, services=services)
        if played is not None:
            played.append(scenario)
        task = progress.add_task("scenario", total=len(STEPS))
        for number, step in enumerate(STEPS, 1):
            if results and not results[-1].ok:
                results.append(StepResult(step.title, "SKIPPED", "an earlier step failed"))
            else:
                progress.update(task, description=step.title)
                results.append(run_step(step, scenario))
                progress.console.print(step_line(number, results[-1]))
                for detail in scenario.details:
                    progress.console.print(Padding(detail, (0, 0, 0, 6)))
                scenario.details.clear()
            progress.advance(task)
    return results


DEMO_BREAKERS = json.dumps(
    {
        callee: {
            "breaker": {
                "sliding_window_size": 6,
                "minimum_number_of_calls": 3,
                "wait_duration_in_open_state": 1.0,
            }
        }
        for callee in SERVICES
    }
)
"""Per called service, breaker knobs small enough for the demo (``LMS_CLIENT_TARGETS``)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the process exit code."""
    args = _parse(argv)
    console = Console(highlight=False)
    try:
        base = port_base()
        settings = load_settings()
    except (ValueError, SettingsError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    state_dir = settings.state_dir.resolve()  # the children run in ROOT, maybe not here
    identity_url = f"http://{HOST}:{service_port('identity', base)}"
    platform_secrets = new_platform_secrets(encryption_keys=_encryption_keys(state_dir))
    platform = Platform(
        {name: service_port(name, base) for name in SERVICES},
        root=ROOT,
        log_dir=state_dir / "demo",
        environ={
            **os.environ,
            "LMS_STATE_DIR": str(state_dir),
            "LMS_DATABASE_MIGRATE_ON_START": "true",
        },
        service_environ={
            name: {
                **auth_environ(name, identity_url, platform_secrets),
                # each registers itself in the local registry; the callers find it there
                "LMS_DISCOVERY_ADDRESS": HOST,
                "LMS_DISCOVERY_PORT": str(service_port(name, base)),
                # a breaker that trips and heals within seconds (the step that stops courses)
                "LMS_CLIENT_TARGETS": DEMO_BREAKERS,
            }
            for name in SERVICES
        },
    )
    atexit.register(platform.stop)
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, _interrupt)
    try:
        return _run(
            console,
            platform,
            data=data_line(settings.database_url, settings.database_schema, state_dir),
            settings=settings.model_copy(update={"state_dir": state_dir}),
            once=args.once,
            start_timeout=args.start_timeout,
        )
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted[/]")
        return EXIT_INTERRUPTED if args.once else 0
    except PlatformError as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_FAILED
    finally:
        # a second Ctrl-C must not cut the clean-up short; stopping is bounded anyway
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)
        with console.status("stopping the services"):
            codes = platform.stop()
        if codes:
            console.print(stopped_line(codes))
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _encryption_keys(state_dir: Path) -> str:
    """Identity's field-encryption keyring, made at the first demo and kept with the data.

    Encrypted phone numbers stay in identity's database between runs, so
    their key must too: ``<state>/demo/encryption-keys`` (mode 0600).
    """
    path = state_dir / "demo" / "encryption-keys"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(new_key_spec("demo-1"))
    return path.read_text().strip()


def _run(
    console: Console,
    platform: Platform,
    *,
    data: str,
    settings: Settings,
    once: bool,
    start_timeout: float,
) -> int:
    console.rule("[bold]LMS platform demo")
    platform.start()  # before any console thread: children are forked here
    with console.status("starting the services") as status:

        def ready(svc: ServiceProcess) -> None:
            console.print(f"[green]✓[/] {svc.name} ready at {svc.url}")
            status.update(f"waiting for the services ({svc.name} is ready)")

        platform.wait_ready(start_timeout, on_ready=ready)
    played: list[Scenario] = []
    results = run_scenario(
        console,
        {s.name: s.url for s in platform.services},
        played=played,
        services=_Restarts(platform, start_timeout),
    )
    console.print()
    console.print(summary_table(results))
    for result in results:
        if result.result == "FAILED":
            console.print(f"[red]{result.title} failed:[/] {result.summary}")
    console.print(services_table(platform.services))
    console.print(data)
    if played and played[0].trace_id:
        _print_telemetry(console, settings, played[0].trace_id)
    if not once:
        console.print("[bold]The platform is up.[/] Press Ctrl-C to stop it.")
        platform.watch()  # returns only by raising
    return 0 if all(result.ok for result in results) else EXIT_FAILED


class _Restarts:
    """The scenario's :class:`~examples.scenario.ServiceControl`: the platform's processes."""

    def __init__(self, platform: Platform, start_timeout: float) -> None:
        self.platform = platform
        self.start_timeout = start_timeout

    def stop(self, name: str) -> None:
        self.platform.stop_service(name)

    def start(self, name: str) -> None:
        # its tables are up to date since its first start: one "migrated" line per run
        again = {"LMS_DATABASE_MIGRATE_ON_START": "false"}
        self.platform.start_service(name, self.start_timeout, environ=again)


def _print_telemetry(console: Console, settings: Settings, trace_id: str) -> None:
    """The traced enrollment as a tree across services, then the dependency map."""
    with console.status("collecting the trace"):
        spans = wait_for_trace(settings, trace_id)
    console.rule(f"[bold]Trace {trace_id}[/] (lms-shared traces show {trace_id})")
    for line in trace_lines(spans) or ["(no spans stored yet)"]:
        console.print(line, markup=False)
    console.rule("[bold]Dependency map[/] (lms-shared map)")
    for line in map_lines(settings):
        console.print(line, markup=False)


if __name__ == "__main__":
    sys.exit(main())
