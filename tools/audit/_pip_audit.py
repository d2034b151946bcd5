"""Audit the locked requirements with pip-audit and read its JSON report.

pip-audit's per-package skip reasons ("Dependency not found on PyPI and
could not be audited") are read and reported as *not checked*: its own
summary says "No known vulnerabilities found" even when it could look
nothing up.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from tools.audit._allowlist import Allowlist
from tools.audit._process import TimeoutExpired, last_line, run_tool
from tools.audit._report import Section

__all__ = ["read_pip_audit_report", "run_pip_audit"]


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
        code, out, err = run_tool(args, timeout)
        report: dict[str, Any] = json.loads(out)
    except TimeoutExpired:
        section.unchecked.append(f"pip-audit did not finish within {timeout:g} s")
        return section
    except json.JSONDecodeError:
        section.unchecked.append(f"pip-audit failed (exit {code}): {last_line(err or out)}")
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
