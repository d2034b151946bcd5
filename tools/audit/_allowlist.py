"""The allowlist of accepted findings (``audit-allowlist.toml``): reason and expiry required."""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tools.audit._requirements import normalize_name

__all__ = ["Allowlist", "AllowlistEntry"]


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
