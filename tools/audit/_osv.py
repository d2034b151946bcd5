"""An offline vulnerability check against OSV-format advisories.

For machines that cannot reach a vulnerability service (air-gapped CI,
or this project's own build machines): point it at advisories in the OSV
schema (https://ossf.github.io/osv-schema/) — one ``.json`` file, a
folder of them, or the ``all.zip`` export of an OSV ecosystem — and a
pinned requirements file, and it reports which pinned versions an
advisory affects.

Ranges of type ``ECOSYSTEM`` and ``SEMVER`` and explicit ``versions``
lists are evaluated (PEP 440 ordering); ``GIT`` ranges cannot be, and an
advisory that has nothing else is reported as *unchecked*, as is a
version that does not parse, and a requirement that is not pinned with
``==``. Nothing is silently treated as safe.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from tools.audit._allowlist import Allowlist
from tools.audit._report import Section
from tools.audit._requirements import normalize_name

__all__ = ["OsvDatabase", "OsvFinding", "OsvReport", "check_osv"]


@dataclass(frozen=True, slots=True)
class OsvFinding:
    """A pinned version an advisory affects (or could not be checked against).

    Attributes:
        package: normalised package name.
        version: the pinned version.
        advisory: the advisory id (``PYSEC-...``, ``GHSA-...``).
        aliases: other ids of the same advisory (CVE, GHSA).
        summary: the advisory's summary or the start of its details.
        fixed: versions that fix it, when the advisory says.
        reason: for unchecked pairs, why.
    """

    package: str
    version: str
    advisory: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    fixed: tuple[str, ...] = ()
    reason: str = ""

    @property
    def ids(self) -> frozenset[str]:
        """The advisory id and its aliases."""
        return frozenset((self.advisory, *self.aliases))


@dataclass
class OsvReport:
    """What the offline check found.

    Attributes:
        vulnerable: pinned versions an advisory affects.
        unchecked: pairs that could not be decided, with the reason.
        advisories: advisories loaded (for PyPI).
        packages: pinned packages checked.
    """

    vulnerable: list[OsvFinding] = field(default_factory=list)
    unchecked: list[OsvFinding] = field(default_factory=list)
    advisories: int = 0
    packages: int = 0


def _iter_documents(path: Path) -> Iterator[tuple[str, Any]]:
    if path.is_dir():
        for item in sorted(path.rglob("*.json")):
            yield str(item), json.loads(item.read_text())
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".json"):
                    yield f"{path}:{name}", json.loads(archive.read(name))
    else:
        yield str(path), json.loads(path.read_text())


def _advisories(document: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(document, list):
        return [d for d in document if isinstance(d, Mapping)]
    if isinstance(document, Mapping):
        vulns = document.get("vulns")
        if isinstance(vulns, list):
            return [d for d in vulns if isinstance(d, Mapping)]
        return [document]
    return []


def _range_affects(version: Version, events: list[Mapping[str, str]]) -> bool:
    def key(event: Mapping[str, str]) -> Version:
        value = next(iter(event.values()))
        return Version("0") if value == "0" else Version(value)

    affected = False
    for event in sorted(events, key=key):
        kind, bound = next(iter(event)), key(event)
        if kind == "introduced" and version >= bound:
            affected = True
        past_end = version > bound if kind == "last_affected" else version >= bound
        if kind in {"fixed", "limit", "last_affected"} and past_end:
            affected = False
    return affected


class OsvDatabase:
    """PyPI advisories in the OSV schema, indexed by package.

    Args:
        advisories: OSV advisory objects.
    """

    def __init__(self, advisories: Iterable[Mapping[str, Any]]) -> None:
        self._by_package: dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {}
        self.count = 0
        for advisory in advisories:
            hit = False
            for affected in advisory.get("affected", ()):
                package = affected.get("package", {})
                if str(package.get("ecosystem", "")).split(":")[0].lower() != "pypi":
                    continue
                name = normalize_name(str(package.get("name", "")))
                self._by_package.setdefault(name, []).append((advisory, affected))
                hit = True
            self.count += hit

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> OsvDatabase:
        """Read advisories from JSON files, folders of them, or OSV ``.zip`` exports.

        Raises:
            OSError: a path cannot be read.
            ValueError: a file is not JSON.
        """
        found: list[Mapping[str, Any]] = []
        for path in paths:
            for _, document in _iter_documents(Path(path)):
                found.extend(_advisories(document))
        return cls(found)

    def check(self, pins: Mapping[str, str]) -> OsvReport:
        """Match pinned versions against the advisories."""
        report = OsvReport(advisories=self.count, packages=len(pins))
        for name, pinned in sorted(pins.items()):
            for advisory, affected in self._by_package.get(normalize_name(name), ()):
                self._check_one(report, normalize_name(name), pinned, advisory, affected)
        return report

    def _check_one(
        self,
        report: OsvReport,
        name: str,
        pinned: str,
        advisory: Mapping[str, Any],
        affected: Mapping[str, Any],
    ) -> None:
        ranges = [r for r in affected.get("ranges", ()) if r.get("type") in {"ECOSYSTEM", "SEMVER"}]
        fixed = tuple(e["fixed"] for r in ranges for e in r.get("events", ()) if "fixed" in e)
        finding = OsvFinding(
            package=name,
            version=pinned,
            advisory=str(advisory.get("id", "?")),
            aliases=tuple(str(a) for a in advisory.get("aliases", ())),
            summary=str(advisory.get("summary") or advisory.get("details", ""))[:160],
            fixed=fixed,
        )
        versions = {str(v) for v in affected.get("versions", ())}
        if pinned in versions:
            report.vulnerable.append(finding)
            return
        if not ranges:
            if not versions:
                report.unchecked.append(_with_reason(finding, "advisory has only GIT ranges"))
            return
        try:
            version = Version(pinned)
            hit = any(_range_affects(version, list(r.get("events", ()))) for r in ranges)
        except InvalidVersion:
            report.unchecked.append(_with_reason(finding, "a version does not parse (PEP 440)"))
            return
        if hit:
            report.vulnerable.append(finding)


def _with_reason(finding: OsvFinding, reason: str) -> OsvFinding:
    return OsvFinding(
        finding.package,
        finding.version,
        finding.advisory,
        finding.aliases,
        finding.summary,
        finding.fixed,
        reason,
    )


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
