"""``python -m lms_shared.security.audit``: bandit, pip-audit and an offline OSV check.

One command for ``make audit`` and for CI (see docs/audit.md):

1. **bandit** over the source folder (static security lint);
2. **pip-audit** over the locked requirements (asks a vulnerability
   service; skipped with ``--offline``);
3. **OSV offline check** of the same pins against advisory files given
   with ``--osv`` (a JSON file, a folder, or an OSV ``all.zip`` export);
4. the lock file against the installed packages (is it stale?).

Accepted findings live in an allowlist (TOML, every entry with a reason
and an expiry date). The report lists open findings, accepted ones, and
plainly what could **not** be checked: pip-audit answers "no known
vulnerabilities" even when it could look nothing up, so its skip reasons
are read and reported. Exit status: 0 all checked and clean, 1 open
findings, 2 clean as far as checked but something was not checked
(``--allow-incomplete`` turns that into 0), 3 bad usage or allowlist.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tomllib
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from lms_shared.security._audit_tools import (
    Allowlist,
    AllowlistEntry,
    Section,
    run_bandit,
    run_pip_audit,
)
from lms_shared.security._osv import OsvDatabase, normalize_name, read_requirements

__all__ = ["Allowlist", "AllowlistEntry", "Section", "main"]


def check_osv(
    paths: Sequence[str], pins: dict[str, str], unpinned: list[str], allowlist: Allowlist
) -> Section:
    """The offline OSV section."""
    section = Section("OSV advisories (offline)")
    if not paths:
        section.unchecked.append("no advisory file given (--osv PATH): nothing checked offline")
        return section
    try:
        database = OsvDatabase.load(paths)
    except (OSError, ValueError) as exc:
        section.unchecked.append(f"advisories could not be read: {exc}")
        return section
    report = database.check(pins)
    section.notes.append(
        f"{report.advisories} PyPI advisories in {', '.join(paths)}; {report.packages} pins checked"
        " (a clean result is only as complete as these files)"
    )
    for finding in report.vulnerable:
        text = f"{finding.package}=={finding.version}: {finding.advisory}"
        text += f" ({', '.join(finding.aliases)})" if finding.aliases else ""
        text += f" fixed in {', '.join(finding.fixed)}" if finding.fixed else ""
        text += f" - {finding.summary}" if finding.summary else ""
        entry = allowlist.accepts_vuln(finding.ids, finding.package)
        if entry:
            section.accepted.append(f"{text} [{entry.reason}]")
        else:
            section.findings.append(text)
    for finding in report.unchecked:
        section.unchecked.append(
            f"{finding.package}=={finding.version} vs {finding.advisory}: {finding.reason}"
        )
    section.unchecked.extend(f"not pinned with ==, not checked: {line}" for line in unpinned)
    return section


def lock_drift(pins: dict[str, str]) -> list[str]:
    """Differences between the lock file and the installed distributions."""
    installed = {
        normalize_name(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"]
    }
    drift = []
    for name, version in sorted(pins.items()):
        have = installed.get(name)
        if have is None:
            drift.append(f"{name}=={version} is locked but not installed")
        elif have != version:
            drift.append(f"{name} is locked at {version} but {have} is installed")
    return drift


def _options(argv: Sequence[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(
        prog="python -m lms_shared.security.audit", description=(__doc__ or "").splitlines()[0]
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
    """Run the audit and print the report; see the module docstring for exit codes."""
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
    return _report(sections, opts.allow_incomplete)


def _report(sections: list[Section], allow_incomplete: bool) -> int:
    for section in sections:
        print(section.render())
    findings = sum(len(s.findings) for s in sections)
    unchecked = sum(len(s.unchecked) for s in sections)
    accepted = sum(len(s.accepted) for s in sections)
    if findings:
        verdict, code = f"FAILED: {findings} open finding(s)", 1
    elif unchecked:
        verdict = f"INCOMPLETE: no open finding, but {unchecked} thing(s) could not be checked"
        code = 0 if allow_incomplete else 2
    else:
        verdict, code = "PASSED: everything checked, no open finding", 0
    print(f"\naudit {verdict} ({accepted} accepted by the allowlist)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
