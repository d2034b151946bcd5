"""Run bandit and pip-audit as subprocesses and read their JSON reports.

Both tools are optional (the ``audit`` and ``dev`` extras): a missing
tool, a crash, a timeout or an unreadable report becomes a *not checked*
line in the audit, never a pass. pip-audit's per-package skip reasons
("Dependency not found on PyPI and could not be audited") are read for
the same reason: its own summary says "No known vulnerabilities found"
even when it could look nothing up.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess  # nosec B404 - runs fixed tool commands, never a shell
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lms_shared.security._osv import normalize_name

__all__ = [
    "Allowlist",
    "AllowlistEntry",
    "Section",
    "read_pip_audit_report",
    "run_bandit",
    "run_pip_audit",
]


@dataclass(frozen=True, slots=True)
class AllowlistEntry:
    """One accepted finding.

    Attributes:
        kind: ``vulnerability`` or ``bandit``.
        id: advisory id/alias, or bandit test id (``B608``).
        reason: why it is accepted (required).
        expires: after this date the finding counts again.
        package: for vulnerabilities, the package it is accepted for.
        path: for bandit, the file (or glob) it is accepted in.
    """

    kind: str
    id: str
    reason: str
    expires: dt.date | None = None
    package: str | None = None
    path: str | None = None


@dataclass
class Allowlist:
    """The accepted findings, split into active and expired entries."""

    active: list[AllowlistEntry] = field(default_factory=list)
    expired: list[AllowlistEntry] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None, today: dt.date) -> Allowlist:
        """Read the TOML allowlist; a missing file is an empty list.

        Raises:
            ValueError: an entry lacks its id or reason, or has a bad date.
        """
        out = cls()
        if path is None or not path.exists():
            return out
        data = tomllib.loads(path.read_text())
        for kind, key in (("vulnerability", "id"), ("bandit", "test")):
            for raw in data.get(kind, []):
                if not raw.get(key) or not str(raw.get("reason", "")).strip():
                    raise ValueError(f"{path}: every [[{kind}]] needs '{key}' and a 'reason'")
                expires = raw.get("expires")
                if expires is not None and not isinstance(expires, dt.date):
                    raise ValueError(f"{path}: 'expires' of {raw[key]} is not a date (YYYY-MM-DD)")
                entry = AllowlistEntry(
                    kind,
                    str(raw[key]),
                    str(raw["reason"]),
                    expires,
                    normalize_name(raw["package"]) if raw.get("package") else None,
                    raw.get("path"),
                )
                expired = expires is not None and expires < today
                (out.expired if expired else out.active).append(entry)
        return out

    def accepts_vuln(self, ids: frozenset[str], package: str) -> AllowlistEntry | None:
        """The entry accepting an advisory (any of its ids) for ``package``."""
        for entry in self.active:
            if (
                entry.kind == "vulnerability"
                and entry.id in ids
                and (entry.package is None or entry.package == normalize_name(package))
            ):
                return entry
        return None

    def accepts_bandit(self, test_id: str, filename: str) -> AllowlistEntry | None:
        """The entry accepting bandit test ``test_id`` in ``filename``."""
        for entry in self.active:
            if (
                entry.kind == "bandit"
                and entry.id == test_id
                and (entry.path is None or Path(filename).match(entry.path))
            ):
                return entry
        return None


@dataclass
class Section:
    """One check's outcome: open findings, accepted ones, and what it could not check."""

    name: str
    findings: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The section as plain text."""
        lines = [f"== {self.name}"]
        for title, items in (
            ("OPEN", self.findings),
            ("accepted (allowlist)", self.accepted),
            ("NOT CHECKED", self.unchecked),
            ("note", self.notes),
        ):
            lines.extend(f"  {title}: {item}" for item in items)
        if len(lines) == 1:
            lines.append("  clean")
        return "\n".join(lines)


def _run(args: list[str], timeout: float) -> tuple[int, str, str]:
    completed = subprocess.run(  # noqa: S603 # nosec B603 - fixed argv, no shell
        args, capture_output=True, text=True, timeout=timeout, check=False
    )
    return completed.returncode, completed.stdout, completed.stderr


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def run_bandit(src: Path, allowlist: Allowlist, timeout: float) -> Section:
    """Scan ``src`` with bandit; findings the allowlist accepts are listed apart."""
    section = Section(f"bandit ({src})")
    if importlib.util.find_spec("bandit") is None:
        section.unchecked.append("bandit is not installed (pip install 'lms-shared[audit]')")
        return section
    if not src.exists():
        section.unchecked.append(f"{src} does not exist")
        return section
    try:
        _, out, err = _run(
            [sys.executable, "-m", "bandit", "-r", str(src), "-f", "json", "-q"], timeout
        )
        report: dict[str, Any] = json.loads(out)
    except subprocess.TimeoutExpired:
        section.unchecked.append(f"bandit did not finish within {timeout:g} s")
        return section
    except json.JSONDecodeError:
        section.unchecked.append(f"bandit failed: {_tail(err or out)}")
        return section
    for error in report.get("errors", []):
        section.unchecked.append(
            f"bandit could not scan {error.get('filename')}: {error.get('reason')}"
        )
    for item in report.get("results", []):
        text = (
            f"{item['test_id']} {item['issue_severity'].lower()}/{item['issue_confidence'].lower()}"
            f" {item['filename']}:{item['line_number']} {item['issue_text']}"
        )
        entry = allowlist.accepts_bandit(item["test_id"], item["filename"])
        if entry:
            section.accepted.append(f"{text} [{entry.reason}]")
        else:
            section.findings.append(text)
    totals = report.get("metrics", {}).get("_totals", {})
    section.notes.append(
        f"{totals.get('loc', '?')} lines scanned, {totals.get('nosec', 0)} marked # nosec"
    )
    return section


def run_pip_audit(lock: Path, allowlist: Allowlist, timeout: float) -> Section:
    """Audit the pinned ``lock`` with pip-audit (online vulnerability service)."""
    section = Section(f"pip-audit ({lock})")
    if importlib.util.find_spec("pip_audit") is None:
        section.unchecked.append("pip-audit is not installed (pip install 'lms-shared[audit]')")
        return section
    ignored = [
        arg
        for entry in allowlist.active
        if entry.kind == "vulnerability"
        for arg in ("--ignore-vuln", entry.id)
    ]
    args = [sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip"]
    args += ["-f", "json", "--progress-spinner", "off", *ignored]
    try:
        code, out, err = _run(args, timeout)
        report: dict[str, Any] = json.loads(out)
    except subprocess.TimeoutExpired:
        section.unchecked.append(f"pip-audit did not finish within {timeout:g} s")
        return section
    except json.JSONDecodeError:
        section.unchecked.append(f"pip-audit failed (exit {code}): {_tail(err or out)}")
        return section
    read_pip_audit_report(report, allowlist, section)
    return section


def read_pip_audit_report(report: dict[str, Any], allowlist: Allowlist, section: Section) -> None:
    """Fill ``section`` from pip-audit's JSON report (``-f json``)."""
    skipped = 0
    for dep in report.get("dependencies", []):
        name, version = dep.get("name", "?"), dep.get("version", "?")
        if dep.get("skip_reason"):
            skipped += 1
            continue
        for vuln in dep.get("vulns", []):
            ids = frozenset([vuln.get("id", "?"), *vuln.get("aliases", [])])
            versions = vuln.get("fix_versions", [])
            fix = f"fixed in {', '.join(versions)}" if versions else "no fix yet"
            text = f"{name}=={version}: {vuln.get('id')} ({fix})"
            entry = allowlist.accepts_vuln(ids, name)
            if entry:
                section.accepted.append(f"{text} [{entry.reason}]")
            else:
                section.findings.append(text)
    total = len(report.get("dependencies", []))
    if skipped:
        section.unchecked.append(
            f"{skipped} of {total} packages could not be looked up (vulnerability service "
            "unreachable or package unknown to it); use --osv with an advisory export"
        )
    else:
        section.notes.append(f"{total} packages looked up")
