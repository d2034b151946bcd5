"""``python -m tools.audit`` (``make audit``): bandit, pip-audit and an offline OSV check.

A development tool of this repository, not part of the ``lms_shared``
wheel. One command for ``make audit`` and for CI (see docs/audit.md):

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

Modules: ``_cli`` (options, order of the checks), ``_bandit``,
``_pip_audit``, ``_osv`` (the offline matcher), ``_requirements`` (lock
pins and drift), ``_allowlist``, ``_report`` (sections and verdict),
``_process`` (running the external tools).
"""

from tools.audit._allowlist import Allowlist, AllowlistEntry
from tools.audit._cli import main
from tools.audit._osv import OsvDatabase, OsvFinding, OsvReport
from tools.audit._report import Section

__all__ = [
    "Allowlist",
    "AllowlistEntry",
    "OsvDatabase",
    "OsvFinding",
    "OsvReport",
    "Section",
    "main",
]
