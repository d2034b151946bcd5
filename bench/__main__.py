"""``python -m bench [NAME ...] [OPTIONS]``: run benchmarks (all by default).

Leading arguments that name benchmarks select them; the remaining ones are
passed to each selected benchmark's ``main``. ``--list`` lists them.
"""

from __future__ import annotations

import importlib
import pkgutil
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import cast

import bench

Main = Callable[[list[str]], int]


def available() -> list[str]:
    """Names of the benchmark modules in ``bench/``, sorted."""
    found = pkgutil.iter_modules([str(Path(bench.__file__).parent)])
    return sorted(m.name for m in found if not m.name.startswith("_"))


def _load(name: str) -> tuple[Main, str]:
    module = importlib.import_module(f"bench.{name}")
    doc = (module.__doc__ or "").strip().splitlines()
    return cast(Main, module.main), doc[0] if doc else ""


def _usage(names: list[str]) -> None:
    print(__doc__)
    print("benchmarks:", ", ".join(names) or "(none)")
    print("options of one benchmark: python -m bench NAME --help")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the benchmarks' finally blocks stop their servers


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; the worst exit code wins."""
    signal.signal(signal.SIGTERM, _interrupt)
    args = list(sys.argv[1:] if argv is None else argv)
    names = available()
    selected: list[str] = []
    while args and not args[0].startswith("-"):
        name = args.pop(0)
        if name not in names:
            print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
            return 2
        selected.append(name)
    if not selected and args[:1] in (["-h"], ["--help"]):
        _usage(names)
        return 0
    if args[:1] == ["--list"]:
        for name in selected or names:
            print(f"{name:12} {_load(name)[1]}")
        return 0
    worst = 0
    for name in selected or names:
        try:
            run, _ = _load(name)
            code = run(args)
        except SystemExit as exc:  # argparse: --help or a bad option
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception:
            traceback.print_exc()
            print(f"benchmark {name!r} failed", file=sys.stderr)
            code = 2
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
