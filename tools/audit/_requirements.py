"""The pinned requirements of a lock file, and how they differ from the installed packages."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

__all__ = ["lock_drift", "normalize_name", "read_requirements"]

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#\\]+)")


def normalize_name(name: str) -> str:
    """A PyPI project name in PEP 503 normal form (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: str | Path) -> tuple[dict[str, str], list[str]]:
    """The ``name==version`` pins of a requirements/lock file.

    Returns:
        ``(pins, unpinned)``: normalised name to version, and the lines
        that name a package without an exact pin (they cannot be checked).
    """
    pins: dict[str, str] = {}
    unpinned: list[str] = []
    for raw in Path(path).read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-", "--")):
            continue
        match = _PIN.match(line)
        if match:
            pins[normalize_name(match.group(1))] = match.group(3)
        else:
            unpinned.append(line)
    return pins, unpinned


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
