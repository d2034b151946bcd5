"""Client: requests/s of ``service.client(...)`` against a bare ``httpx.AsyncClient``.

The same calls (``GET /ok`` and its JSON decoded), from one process with a
few concurrent tasks, to one server in its own process on another CPU,
in interleaved rounds:

* ``httpx``: a bare ``httpx.AsyncClient`` (``get`` then ``.json()``);
* ``fixed``: ``service.client("bench", url=...)``: ``get_json`` with the
  whole pipeline (deadline, service breaker, retry gate and budget,
  attempt timeout, bounded read, bounded JSON, header propagation);
* ``discovery``: the same through ``LMS_DISCOVERY_URL=static://...``
  (cached lookup, default balancer with outlier ejection, instance breaker).

Two servers: ``raw`` (a fixed answer from a bare asyncio protocol: the
client's own cost dominates, the hardest case for the ratio) and
``starlette`` (a real app under uvicorn). Target: >= 0.85x bare httpx.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from rich.console import Console

from bench._procs import cpu_split, listening_socket, pinned, spawn, stop, wait_ready
from bench._report import Comparison, Target, parser, save
from lms_shared import create_service, load_settings

TARGET = 0.85


def _options(argv: list[str]) -> Any:
    cli = parser("client", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds per table (default 7, quick 3)")
    cli.add_argument("--requests", type=int, help="requests per variant per round")
    cli.add_argument("--concurrency", type=int, default=8, help="concurrent tasks (default 8)")
    return cli.parse_args(argv)


async def _rate(call: Callable[[], Awaitable[Any]], count: int, concurrency: int) -> float:
    per_task = count // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_task * concurrency / (time.perf_counter() - started)


async def _measure(port: int, title: str, rounds: int, count: int, concurrency: int) -> Comparison:
    url = f"http://127.0.0.1:{port}"
    result = Comparison(
        title=title,
        unit="req/s",
        higher_is_better=True,
        names={
            "httpx": "bare httpx.AsyncClient",
            "fixed": "service.client (url=)",
            "discovery": "service.client (discovery)",
        },
        baselines=("httpx",),
        targets=(Target("fixed", "httpx", TARGET), Target("discovery", "httpx", TARGET)),
    )
    settings = load_settings(discovery_url=f"static://bench=127.0.0.1:{port}", log_level="warning")
    service = create_service("caller", "1.0.0", settings=settings)
    fixed = service.client("fixed", url=url)
    found = service.client("bench")
    await service.discovery.start()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, trust_env=False) as bare:

        async def plain() -> Any:
            response = await bare.get("/ok")
            response.raise_for_status()
            return response.json()

        variants: dict[str, Callable[[], Awaitable[Any]]] = {
            "httpx": plain,
            "fixed": lambda: fixed.get_json("/ok"),
            "discovery": lambda: found.get_json("/ok"),
        }
        for call in variants.values():  # warm: pools open, caches filled
            await _rate(call, concurrency * 20, concurrency)
        for _ in range(rounds):
            for key, call in variants.items():
                result.add(key, await _rate(call, count, concurrency))
    await service.clients.stop()
    await service.discovery.stop()
    result.notes.append(f"{concurrency} concurrent tasks; one server process on its own CPU")
    return result


def _run(server: str, title: str, rounds: int, count: int, concurrency: int) -> Comparison:
    server_cpus, client_cpus = cpu_split()
    sock = listening_socket()
    port = sock.getsockname()[1]
    proc = spawn(
        "bench._server", server, str(sock.fileno()), cpus=server_cpus, pass_fds=(sock.fileno(),)
    )
    try:
        wait_ready(port, proc, "/ok")
        with pinned(client_cpus):
            return asyncio.run(_measure(port, title, rounds, count, concurrency))
    finally:
        stop(proc)
        sock.close()


def main(argv: list[str] | None = None) -> int:
    """Run the client benchmark; with ``--check`` exit 1 when a target is missed."""
    opts = _options(sys.argv[1:] if argv is None else argv)
    rounds = opts.rounds or (3 if opts.quick else 7)
    count = opts.requests or (800 if opts.quick else 4000)
    console = Console()
    console.print(f"[bold]bench client[/bold]: Python {platform.python_version()}")
    results = [
        _run("raw", "GET /ok, fixed answer (raw asyncio server)", rounds, count, opts.concurrency),
        _run("starlette", "GET /ok, Starlette on uvicorn", rounds, count, opts.concurrency),
    ]
    results[1].gating = False
    for result in results:
        result.render(console)
    if opts.save:
        console.print(f"saved {save('client', results)}")
    if opts.check and not all(result.met() for result in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
