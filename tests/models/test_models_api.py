"""The public API of lms_shared.models, pinned; importing it does nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lms_shared.models
import lms_shared.testing
from lms_shared.errors import LmsError, ProblemError


def test_every_dto_has_a_public_factory() -> None:
    for entry in lms_shared.models.shared_schemas():
        name = f"{entry.model.__name__}Factory"
        assert name in lms_shared.testing.__all__, name
        assert getattr(lms_shared.testing, name).__model__ is entry.model
    assert "LmsFactory" in lms_shared.testing.__all__


def test_errors_belong_to_the_tree() -> None:
    problems = [
        "IdempotencyInFlight",
        "IdempotencyKeyReused",
        "IllegalTransition",
        "InvalidIdempotencyKey",
        "MalformedPatch",
        "MalformedPayload",
        "ModelValidationError",
        "PreconditionRequired",
        "StaleVersion",
        "UnknownFields",
    ]
    for name in problems:
        assert issubclass(getattr(lms_shared.models, name), ProblemError), name
    assert issubclass(lms_shared.models.SchemaVersionError, LmsError)


PROBE = """
import logging, threading
threads = threading.active_count()
handlers = len(logging.getLogger().handlers)
import lms_shared.models
import lms_shared.cli
registry = lms_shared.models.shared_schemas()
assert threading.active_count() == threads, "a thread was started"
assert len(logging.getLogger().handlers) == handlers, "a log handler was installed"
import structlog
assert not structlog.is_configured(), "structlog was configured"
import sys
assert "polyfactory" not in sys.modules, "the factories were imported"
import lms_shared.testing
assert "polyfactory" not in sys.modules, "lms_shared.testing imported the factories eagerly"
print("clean")
"""


def test_nothing_happens_at_import(tmp_path: Path) -> None:
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
    assert list(tmp_path.iterdir()) == []
