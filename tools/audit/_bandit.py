"""Scan the source folder with bandit (static security lint) and read its JSON report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from tools.audit._allowlist import Allowlist
from tools.audit._process import TimeoutExpired, last_line, run_tool
from tools.audit._report import Section

__all__ = ["run_bandit"]


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
        _, out, err = run_tool(
            [sys.executable, "-m", "bandit", "-r", str(src), "-f", "json", "-q"], timeout
        )
        report: dict[str, Any] = json.loads(out)
    except TimeoutExpired:
        section.unchecked.append(f"bandit did not finish within {timeout:g} s")
        return section
    except json.JSONDecodeError:
        section.unchecked.append(f"bandit failed: {last_line(err or out)}")
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
