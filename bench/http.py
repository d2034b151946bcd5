"""HTTP: a tiny protected JSON route on bare FastAPI, a hand-assembled stack and lms-shared.

The variants are described in :mod:`bench._apps`: bare FastAPI, the usual
hand-assembled stack (OpenTelemetry and Prometheus instrumentators,
slowapi, a logging middleware, PyJWT), and lms-shared with observability
off and with everything on; every request carries the same RS256 bearer
token. *In process*: each ASGI app driven directly with a prebuilt
request, CPU µs per request (framework cost alone, little noise). *Over
uvicorn*: requests/s of one uvicorn worker per app (same settings) under
the same keep-alive load from a client process on another CPU, and the
server's CPU µs per request in those rounds. The apps are measured in
interleaved rounds (A, B, C, A, B, C, ...) and reported as medians.
Targets (issue 14), in requests/s: everything on >= 0.55x bare FastAPI,
>= 0.8x the same service with observability off, >= 5x the
hand-assembled stack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console

from bench._apps import APPS, NAMES, PATH, bearer_token, make_key
from bench._asgi import drive, http_scope, running
from bench._load import loop_factory
from bench._procs import (
    ROOT,
    cpu_seconds,
    cpu_split,
    listening_socket,
    pinned,
    spawn,
    stop,
    wait_ready,
)
from bench._profile import profile
from bench._report import Comparison, Target, parser, save
from bench._server import LOOP
from lms_shared.observability import reset_logging

ORDER = ("fastapi", "stack", "lms-off", "lms")
BASELINES = ("fastapi", "lms-off", "stack")
TARGETS = (
    Target("lms", "fastapi", 0.55),
    Target("lms", "lms-off", 0.8),
    Target("lms", "stack", 5.0),
)
ACCESS_LINE = b'"logger_name":"lms.access"'


@dataclass(frozen=True, slots=True)
class Plan:
    """How much to measure."""

    rounds: int = 5
    seconds: float = 3.0
    warmup: float = 1.0
    connections: int = 32
    inproc_rounds: int = 7
    inproc_requests: int = 6_000


QUICK = Plan(rounds=3, seconds=1.0, warmup=0.5, inproc_rounds=3, inproc_requests=2_000)


def _options(argv: list[str]) -> argparse.Namespace:
    doc = (__doc__ or "").splitlines()[0]
    cli = parser("http", doc)
    cli.add_argument("--only", choices=("inproc", "server"), help="in process only, or served only")
    cli.add_argument("--rounds", type=int, help="rounds per table (default 7 in process, 5 served)")
    cli.add_argument("--seconds", type=float, help="load time per app per round (default 3)")
    cli.add_argument("--connections", type=int, help="keep-alive connections (default 32)")
    cli.add_argument("--requests", type=int, help="in-process requests per app per round")
    cli.add_argument(
        "--profile",
        nargs="?",
        const="lms",
        choices=ORDER,
        help="also profile one app in process (default lms) and print the top costs",
    )
    return cli.parse_args(argv)


def _plan(opts: argparse.Namespace) -> Plan:
    base = QUICK if opts.quick else Plan()
    return Plan(
        rounds=opts.rounds or base.rounds,
        seconds=opts.seconds or base.seconds,
        warmup=base.warmup,
        connections=opts.connections or base.connections,
        inproc_rounds=opts.rounds or base.inproc_rounds,
        inproc_requests=opts.requests or base.inproc_requests,
    )


def _comparison(
    title: str, unit: str, *, higher_is_better: bool, targets: bool, gating: bool = True
) -> Comparison:
    return Comparison(
        title=title,
        unit=unit,
        higher_is_better=higher_is_better,
        names={key: NAMES[key] for key in ORDER},
        baselines=BASELINES,
        targets=TARGETS if targets else (),
        gating=gating,
    )


def _access_note(log: Path, requests: int, counted: str) -> str:
    with log.open("rb") as lines:
        written = sum(1 for line in lines if ACCESS_LINE in line)
    note = f"access log: {written:,} lines written for {requests:,} {counted}"
    return note if written >= requests else f"[red]{note}: lines are missing[/red]"


# --- in process ------------------------------------------------------------


def _scope() -> dict[str, Any]:
    """``GET /ok`` with the bearer token."""
    scope = http_scope(PATH)
    scope["headers"].append((b"authorization", f"Bearer {bearer_token()}".encode()))
    return scope


def _warmup(plan: Plan) -> int:
    return max(plan.inproc_requests // 5, 1)


async def _in_process(plan: Plan, result: Comparison) -> int:
    apps = {key: APPS[key]() for key in ORDER}
    scope = _scope()
    failed = 0
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(running(app))
        for app in apps.values():
            failed += (await drive(app, scope, _warmup(plan)))[1]
        for _ in range(plan.inproc_rounds):
            for key, app in apps.items():
                seconds, bad = await drive(app, scope, plan.inproc_requests)
                failed += bad
                result.add(key, seconds / plan.inproc_requests * 1e6)
    return failed


def in_process(plan: Plan, cpus: set[int] | None, logdir: Path) -> Comparison:
    """µs per request of each app driven directly (its logs go to a file)."""
    result = _comparison(
        "In process (no server, no sockets): CPU time per request",
        "µs/req",
        higher_is_better=False,
        targets=False,
    )
    log = logdir / "inproc.log"
    try:
        with (
            log.open("w") as out,
            contextlib.redirect_stdout(out),
            pinned(cpus),
            asyncio.Runner(loop_factory=loop_factory()) as runner,
        ):
            failed = runner.run(_in_process(plan, result))
    finally:
        reset_logging()
    expected = _warmup(plan) + plan.inproc_rounds * plan.inproc_requests
    overhead = result.median("lms") - result.median("fastapi")
    result.notes += [
        f"{plan.inproc_rounds} rounds x {plan.inproc_requests:,} requests per app;"
        f" lms-shared adds {overhead:.1f} µs per request over FastAPI",
        "no target here: it applies to requests/s over uvicorn (the table below)",
        _access_note(log, expected, "requests"),
    ]
    if failed:
        result.notes.append(f"[red]{failed} responses were not 200[/red]")
    return result


# --- over uvicorn ----------------------------------------------------------


def _load(port: int, plan: Plan, seconds: float, cpus: set[int] | None) -> tuple[float, int, int]:
    """Run the load client once: requests/s, completed requests, errors."""
    args = [str(port), str(plan.connections), str(seconds), PATH, bearer_token()]
    with pinned(cpus):
        done = subprocess.run(
            [sys.executable, "-m", "bench._load", *args],
            cwd=ROOT,
            capture_output=True,
            timeout=seconds + 60,
            check=True,
        )
    out = json.loads(done.stdout)
    return out["requests"] / out["seconds"], int(out["requests"]), int(out["errors"])


def over_uvicorn(
    plan: Plan, cpus: tuple[set[int] | None, set[int] | None], logdir: Path
) -> list[Comparison]:
    """Requests/s (and server CPU time per request) of each app under uvicorn."""
    server_cpus, client_cpus = cpus
    title = f"Over uvicorn (1 worker, httptools, {LOOP}, {plan.connections} connections)"
    rps = _comparison(title, "req/s", higher_is_better=True, targets=True)
    cpu = _comparison(
        "Over uvicorn: server CPU time per request (same rounds)",
        "µs/req",
        higher_is_better=False,
        targets=True,
        gating=False,
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    requests = dict.fromkeys(ORDER, 0)
    errors = 0
    try:
        for key in (*ORDER, "raw"):
            with listening_socket() as sock, (logdir / f"{key}.log").open("wb") as log:
                fd = sock.fileno()
                procs[key] = spawn(
                    "bench._server", key, str(fd), cpus=server_cpus, output=log, pass_fds=(fd,)
                )
                ports[key] = sock.getsockname()[1]
        for key, proc in procs.items():
            try:
                wait_ready(ports[key], proc, PATH, token=bearer_token())
            except RuntimeError as exc:
                tail = (logdir / f"{key}.log").read_text(errors="replace")[-2000:]
                name = NAMES.get(key, key)
                raise RuntimeError(f"{name}: {exc}; its output ends:\n{tail}") from None
        ceiling = _load(ports["raw"], plan, plan.warmup * 2, client_cpus)[0]
        stop(procs.pop("raw"))
        for key in ORDER:
            _, count, bad = _load(ports[key], plan, plan.warmup, client_cpus)
            requests[key] += count
            errors += bad
        for _ in range(plan.rounds):
            for key in ORDER:
                before = cpu_seconds(procs[key].pid)
                value, count, bad = _load(ports[key], plan, plan.seconds, client_cpus)
                after = cpu_seconds(procs[key].pid)
                rps.add(key, value)
                if before is not None and after is not None and count:
                    cpu.add(key, (after - before) / count * 1e6)
                requests[key] += count
                errors += bad
    finally:
        for proc in procs.values():
            stop(proc)
    pinning = "not pinned (1 CPU)"
    if server_cpus and client_cpus:
        pinning = f"server on CPU {min(server_cpus)}, client on CPU {min(client_cpus)}"
    rps.notes += [
        f"{plan.rounds} rounds x {plan.seconds:g} s per app; {pinning}",
        f"load client ceiling (a raw asyncio server with a canned response): {ceiling:,.0f} req/s",
        _access_note(logdir / "lms.log", requests["lms"], "requests counted by the client"),
    ]
    if errors:
        rps.notes.append(f"[red]{errors} errors (non-200 or dropped connections)[/red]")
    cpu.notes.append(
        "CPU time the server process used per request (includes uvicorn), from /proc:"
        " it moves far less than req/s when other processes take the CPU"
    )
    return [rps, cpu] if cpu.rounds else [rps]


def main(argv: list[str]) -> int:
    """Run the HTTP benchmark; 1 under ``--check`` when a target is missed."""
    opts = _options(argv)
    plan = _plan(opts)
    console = Console()
    cpus = cpu_split()
    versions = ", ".join(f"{p} {version(p)}" for p in ("fastapi", "starlette", "uvicorn"))
    console.print(
        f"[bold]bench http[/bold]: Python {platform.python_version()}, {versions}, {LOOP}",
        highlight=False,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="lms-bench-") as tmp:
        logdir = Path(tmp)
        make_key(logdir)
        os.environ["LMS_STATE_DIR"] = str(logdir / "state")  # spans and logs of the runs
        if opts.only != "server":
            results.append(in_process(plan, cpus[0], logdir))
            results[-1].render(console)
        if opts.only != "inproc":
            for result in over_uvicorn(plan, cpus, logdir):
                results.append(result)
                result.render(console)
        if opts.profile:
            build = APPS[opts.profile]
            log = logdir / "profile.log"
            profile(NAMES[opts.profile], build, _scope(), plan.inproc_requests, console, log)
    if opts.save:
        path = save("http", results, versions=versions, loop=LOOP, plan=asdict(plan))
        console.print(f"saved {path.relative_to(ROOT)}")
    return 1 if opts.check and not all(r.met() for r in results) else 0
