"""The audit report: one :class:`Section` per check, and the verdict with its exit status."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Section", "print_report"]


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


def print_report(sections: list[Section], allow_incomplete: bool) -> int:
    """Print every section and the verdict; return the exit status (0, 1 or 2)."""
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
