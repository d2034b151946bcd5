"""The vulnerability audit: offline OSV matching, allowlist, bandit and pip-audit.

The OSV fixture is modelled on the published advisory PYSEC-2018-28
(CVE-2018-18074, requests before 2.20.0 leaking Authorization headers).
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import zipfile
from pathlib import Path

import pytest

from tools.audit import Allowlist, AllowlistEntry, OsvDatabase, Section, main
from tools.audit._pip_audit import read_pip_audit_report
from tools.audit._requirements import normalize_name, read_requirements

DATA = Path(__file__).parent / "data"
ADVISORY = DATA / "PYSEC-2018-28.json"
OLD_LOCK = DATA / "requirements-old.lock"
ROOT = Path(__file__).parents[2]


def test_requirements_are_read_and_normalised() -> None:
    pins, unpinned = read_requirements(OLD_LOCK)
    assert pins == {
        "certifi": "2018.8.24",
        "idna": "2.7",
        "requests": "2.19.1",
        "urllib3": "1.23",
    }
    assert unpinned == ["flask>=2.0"]
    assert normalize_name("Zope.Interface_x") == "zope-interface-x"


@pytest.mark.parametrize(
    ("version", "affected"),
    [("2.19.1", True), ("2.2.0", True), ("0.1", True), ("2.20.0", False), ("2.31.0", False)],
)
def test_the_advisory_matches_old_versions_only(version: str, affected: bool) -> None:
    report = OsvDatabase.load([ADVISORY]).check({"requests": version})
    assert report.advisories == 1
    assert bool(report.vulnerable) is affected
    assert report.unchecked == []
    if affected:
        finding = report.vulnerable[0]
        assert finding.advisory == "PYSEC-2018-28"
        assert finding.ids == {"PYSEC-2018-28", "CVE-2018-18074", "GHSA-x84v-xcm2-53pg"}
        assert finding.fixed == ("2.20.0",)


def advisory(
    ranges: list[dict[str, object]], versions: list[str] | None = None
) -> dict[str, object]:
    affected: dict[str, object] = {
        "package": {"ecosystem": "PyPI", "name": "demo"},
        "ranges": ranges,
    }
    if versions is not None:
        affected["versions"] = versions
    return {"id": "TEST-1", "affected": [affected]}


def test_last_affected_and_undecidable_advisories() -> None:
    last = advisory(
        [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"last_affected": "1.4"}]}]
    )
    db = OsvDatabase([last])
    assert db.check({"demo": "1.4"}).vulnerable
    assert not db.check({"demo": "1.4.1"}).vulnerable
    assert not db.check({"demo": "0.9"}).vulnerable
    git_only = OsvDatabase([advisory([{"type": "GIT", "events": [{"introduced": "0"}]}])])
    assert git_only.check({"demo": "1.0"}).unchecked[0].reason == "advisory has only GIT ranges"
    bad_version = db.check({"demo": "not-a-version"})
    assert bad_version.unchecked[0].reason.startswith("a version does not parse")
    other = OsvDatabase(
        [{"id": "X", "affected": [{"package": {"ecosystem": "npm", "name": "demo"}}]}]
    )
    assert other.count == 0


def test_folders_zip_exports_and_lists_load(tmp_path: Path) -> None:
    folder = tmp_path / "advisories" / "PyPI"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text(ADVISORY.read_text())
    export = tmp_path / "all.zip"
    with zipfile.ZipFile(export, "w") as archive:
        archive.writestr("PYSEC-2018-28.json", ADVISORY.read_text())
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"vulns": [json.loads(ADVISORY.read_text())]}))
    for source in (tmp_path / "advisories", export, wrapped):
        assert OsvDatabase.load([source]).check({"requests": "2.19.1"}).vulnerable


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_offline_audit_reports_the_old_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        capsys,
        "--no-bandit",
        "--offline",
        "--lock", str(OLD_LOCK),
        "--allowlist", str(tmp_path / "none.toml"),
        "--osv", str(ADVISORY),
    )  # fmt: skip
    assert code == 1
    assert "OPEN: requests==2.19.1: PYSEC-2018-28 (CVE-2018-18074, GHSA-x84v-xcm2-53pg)" in out
    assert "fixed in 2.20.0" in out
    assert "NOT CHECKED: skipped (--offline)" in out
    assert "NOT CHECKED: not pinned with ==, not checked: flask>=2.0" in out
    assert "audit FAILED: 1 open finding(s)" in out


def test_allowlisted_findings_pass_but_the_gaps_are_still_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    allowlist = tmp_path / "allow.toml"
    allowlist.write_text(
        textwrap.dedent(
            """
            [[vulnerability]]
            id = "GHSA-x84v-xcm2-53pg"
            package = "requests"
            reason = "only talks to one https host; redirects are off"
            expires = 2027-01-01
            """
        )
    )
    args = ["--no-bandit", "--offline", "--lock", str(OLD_LOCK), "--allowlist", str(allowlist)]
    args += ["--osv", str(ADVISORY), "--today", "2026-06-01"]
    code, out = run(capsys, *args)
    assert code == 2
    assert "accepted (allowlist): requests==2.19.1: PYSEC-2018-28" in out
    assert "[only talks to one https host; redirects are off]" in out
    assert "audit INCOMPLETE" in out
    assert run(capsys, *args, "--allow-incomplete")[0] == 0
    code, out = run(capsys, *args[:-1], "2027-02-01")  # after the expiry date
    assert code == 1
    assert "expired, no longer accepted: vulnerability GHSA-x84v-xcm2-53pg" in out


def test_without_advisories_nothing_passes_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "ok.lock"
    lock.write_text("requests==2.31.0\n")
    args = ["--no-bandit", "--offline", "--lock", str(lock), "--allowlist", str(tmp_path / "x")]
    code, out = run(capsys, *args)
    assert code == 2
    assert "no advisory file given (--osv PATH): nothing checked offline" in out
    code, out = run(capsys, *args, "--osv", str(ADVISORY))
    assert "requests is locked at 2.31.0 but" in out or "is locked but not installed" in out
    code, out = run(capsys, "--no-bandit", "--offline", "--lock", str(tmp_path / "missing.lock"))
    assert code == 2
    assert "no lock file" in out


def test_bad_allowlists_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    allowlist = tmp_path / "allow.toml"
    allowlist.write_text('[[vulnerability]]\nid = "CVE-1"\n')
    assert run(capsys, "--no-bandit", "--offline", "--allowlist", str(allowlist))[0] == 3
    allowlist.write_text('[[bandit]]\ntest = "B101"\nreason = "x"\nexpires = "soon"\n')
    assert run(capsys, "--no-bandit", "--offline", "--allowlist", str(allowlist))[0] == 3


def test_bandit_findings_and_their_allowlist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "tool.py").write_text(
        "import subprocess\nimport sys\n\nsubprocess.call(sys.argv[1], shell=True)\n"
    )
    lock = tmp_path / "empty.lock"
    lock.write_text("")
    args = ["--offline", "--src", str(src), "--lock", str(lock), "--osv", str(ADVISORY)]
    code, out = run(capsys, *args, "--allowlist", str(tmp_path / "none"))
    assert code == 1
    assert "OPEN: B602 high/high" in out
    allowlist = tmp_path / "allow.toml"
    allowlist.write_text(
        '[[bandit]]\ntest = "B602"\npath = "*/tool.py"\nreason = "fixed command"\n'
        '[[bandit]]\ntest = "B404"\nreason = "subprocess is needed"\n'
    )
    code, out = run(capsys, *args, "--allowlist", str(allowlist))
    assert "OPEN: B" not in out
    assert "accepted (allowlist): B602" in out


@pytest.mark.slow
def test_pip_audit_gaps_are_reported_not_passed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        capsys,
        "--no-bandit",
        "--lock", str(OLD_LOCK),
        "--allowlist", str(tmp_path / "none"),
        "--osv", str(ADVISORY),
        "--timeout", "120",
    )  # fmt: skip
    assert "== pip-audit" in out
    assert "PASSED" not in out
    # online: pip-audit finds the advisory itself; offline: it says what it could not look up
    assert "could not be looked up" in out or "OPEN: requests==2.19.1: PYSEC" in out
    assert code in {1, 2}


def test_the_projects_own_allowlist_is_valid() -> None:
    allowlist = Allowlist.load(ROOT / "audit-allowlist.toml", dt.date(2026, 1, 1))
    assert allowlist.active
    for entry in allowlist.active:
        assert entry.reason.strip()
        assert entry.expires is not None
    assert (ROOT / "requirements.lock").exists()


def test_pip_audit_reports_are_read_with_the_allowlist() -> None:
    report = {
        "dependencies": [
            {
                "name": "requests",
                "version": "2.19.1",
                "vulns": [
                    {
                        "id": "PYSEC-2018-28",
                        "aliases": ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
                        "fix_versions": ["2.20.0"],
                    }
                ],
            },
            {
                "name": "jinja2",
                "version": "2.10",
                "vulns": [{"id": "GHSA-462w-v97r-4m45", "aliases": [], "fix_versions": []}],
            },
            {"name": "idna", "version": "3.7", "vulns": []},
        ],
        "fixes": [],
    }
    accept = AllowlistEntry("vulnerability", "CVE-2018-18074", "no redirects", None, "requests")
    section = Section("pip-audit")
    read_pip_audit_report(report, Allowlist(active=[accept]), section)
    assert section.accepted == ["requests==2.19.1: PYSEC-2018-28 (fixed in 2.20.0) [no redirects]"]
    assert section.findings == ["jinja2==2.10: GHSA-462w-v97r-4m45 (no fix yet)"]
    assert section.notes == ["3 packages looked up"]
    assert section.unchecked == []
