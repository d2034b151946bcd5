"""The curated front door, and nothing happening at import."""

from __future__ import annotations

import subprocess
import sys

import lms_shared
import lms_shared.http
import lms_shared.testing


def test_every_exported_name_exists() -> None:
    for module in (lms_shared, lms_shared.http, lms_shared.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_exception_tree() -> None:
    assert issubclass(lms_shared.SettingsError, lms_shared.ConfigurationError)
    assert issubclass(lms_shared.ConfigurationError, lms_shared.LmsError)
    assert issubclass(lms_shared.NotFound, lms_shared.ProblemError)
    assert issubclass(lms_shared.ComponentError, lms_shared.LmsError)


PROBE = """
import logging, threading, sys
threads = threading.active_count()
handlers = len(logging.getLogger().handlers)
import lms_shared, lms_shared.http, lms_shared.testing, lms_shared.cli, lms_shared.observability
from lms_shared import create_service
service = create_service("probe", version="1")
assert threading.active_count() == threads, "a thread was started"
assert len(logging.getLogger().handlers) == handlers, "a log handler was installed"
import structlog
assert not structlog.is_configured(), "structlog was configured"
import os
assert not os.path.exists(".lms"), "the state folder was created"
print("clean")
"""


def test_nothing_happens_at_import_or_construction(tmp_path: object) -> None:
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
