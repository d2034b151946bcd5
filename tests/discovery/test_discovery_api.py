"""The discovery package's front door, its floor, and its problem codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lms_shared.discovery as discovery
from lms_shared.discovery import PROBLEMS
from lms_shared.errors import ErrorCode
from lms_shared.settings import Settings


def test_problem_codes_are_data() -> None:
    assert all(isinstance(code, ErrorCode) for code in PROBLEMS)
    assert [(c.slug, c.status) for c in PROBLEMS] == [
        ("no-instances", 503),
        ("registry-unavailable", 503),
    ]
    assert discovery.NoInstances.code in PROBLEMS
    assert discovery.RegistryUnavailable.code in PROBLEMS


PROBE = """
import sys, threading
threads = threading.active_count()
import lms_shared.discovery
from lms_shared.discovery import registry_from_url, Discovery
from lms_shared.clock import SystemClock
from pathlib import Path
for url in (None, "etcd://127.0.0.1:2379", "static://a=127.0.0.1:1"):
    registry = registry_from_url(url, clock=SystemClock(), state_dir=Path(".lms"))
    Discovery(registry, clock=SystemClock())
assert threading.active_count() == threads, "a thread was started"
import os
assert not os.path.exists(".lms"), "the state folder was created"
assert "dns" not in sys.modules, "dnspython was imported before k8s:// was chosen"
print("clean")
"""


def test_no_driver_and_nothing_started_at_import(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def test_the_docs_name_every_backend_setting_and_balancer() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "discovery.md").read_text()
    for scheme in discovery.BACKENDS:
        assert f"{scheme}://" in page, scheme
    for name in Settings.model_fields:
        if name.startswith("discovery_"):
            assert f"LMS_{name.upper()}" in page, name
    for name in discovery.__all__:
        if name in {"BACKENDS", "Call", "Registration", "Registry"}:
            continue
        assert name in page, name
