"""Run an external audit tool (bandit, pip-audit) as a subprocess with a timeout.

Both tools are optional (the ``audit`` and ``dev`` extras): a missing
tool, a crash, a timeout or an unreadable report becomes a *not checked*
line in the audit, never a pass.
"""

from __future__ import annotations

import subprocess  # nosec B404 - runs fixed tool commands, never a shell

__all__ = ["TimeoutExpired", "last_line", "run_tool"]

TimeoutExpired = subprocess.TimeoutExpired


def run_tool(args: list[str], timeout: float) -> tuple[int, str, str]:
    """Run ``args`` (no shell); return exit status, stdout and stderr.

    Raises:
        TimeoutExpired: the tool did not finish within ``timeout`` seconds.
    """
    completed = subprocess.run(  # noqa: S603 # nosec B603 - fixed argv, no shell
        args, capture_output=True, text=True, timeout=timeout, check=False
    )
    return completed.returncode, completed.stdout, completed.stderr


def last_line(text: str) -> str:
    """The last non-blank line of a tool's output (at most 200 characters)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"
