"""``python -m tools.audit``: bandit, pip-audit and an offline OSV check.

The command line and the order of the checks; see :mod:`tools.audit`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from tools.audit._allowlist import Allowlist
from tools.audit._bandit import run_bandit
from tools.audit._osv import check_osv
from tools.audit._pip_audit import run_pip_audit
from tools.audit._report import Section, print_report
from tools.audit._requirements import lock_drift, read_requirements

__all__ = ["main"]


def _options(argv: Sequence[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(
        prog="python -m tools.audit", description=(__doc__ or "").splitlines()[0]
    )
    cli.add_argument("--src", default="src", help="folder bandit scans (default: src)")
    cli.add_argument("--lock", default="requirements.lock", help="pinned requirements file")
    cli.add_argument("--allowlist", default="audit-allowlist.toml", help="accepted findings")
    cli.add_argument("--osv", action="append", default=[], help="OSV advisories: file, dir or zip")
    cli.add_argument("--offline", action="store_true", help="skip pip-audit (no network)")
    cli.add_argument("--no-bandit", action="store_true", help="skip bandit")
    cli.add_argument("--timeout", type=float, default=300.0, help="seconds per external tool")
    cli.add_argument("--allow-incomplete", action="store_true", help="exit 0 when only unchecked")
    cli.add_argument("--today", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    return cli.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the audit and print the report; see :mod:`tools.audit` for exit codes."""
    opts = _options(argv)
    today = opts.today or dt.datetime.now(dt.UTC).date()
    try:
        allowlist = Allowlist.load(Path(opts.allowlist), today)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"audit: bad allowlist: {exc}", file=sys.stderr)
        return 3
    sections: list[Section] = []
    if not opts.no_bandit:
        sections.append(run_bandit(Path(opts.src), allowlist, opts.timeout))
    lock = Path(opts.lock)
    deps = Section("dependencies")
    pins: dict[str, str] = {}
    unpinned: list[str] = []
    if lock.exists():
        pins, unpinned = read_requirements(lock)
        drift = lock_drift(pins)
        deps.notes.extend(drift or [f"{lock}: {len(pins)} pins, all as installed"])
    else:
        deps.unchecked.append(f"no lock file {lock}: dependencies not audited")
    sections.append(deps)
    if lock.exists():
        if opts.offline:
            sections.append(Section("pip-audit", unchecked=["skipped (--offline)"]))
        else:
            sections.append(run_pip_audit(lock, allowlist, opts.timeout))
        sections.append(check_osv(opts.osv, pins, unpinned, allowlist))
    if allowlist.expired:
        sections.append(
            Section(
                "allowlist",
                notes=[f"expired, no longer accepted: {e.kind} {e.id}" for e in allowlist.expired],
            )
        )
    return print_report(sections, opts.allow_incomplete)
