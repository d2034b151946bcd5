"""The security package's public names, and nothing happening at import."""

from __future__ import annotations

import subprocess
import sys

from lms_shared import ConfigurationError, LmsError, ProblemError, SettingsError
from lms_shared.security import (
    DecryptionError,
    InsecureSettingsError,
    SecurityError,
    UnknownKeyId,
    UnsafeInputError,
    UnsafePathError,
    UnsafeURLError,
)
from lms_shared.security.webhooks import WebhookReplayError, WebhookSignatureError


def test_error_tree() -> None:
    assert issubclass(SecurityError, LmsError)
    assert issubclass(UnknownKeyId, DecryptionError)
    assert issubclass(WebhookReplayError, WebhookSignatureError)
    assert issubclass(WebhookSignatureError, ProblemError)
    assert issubclass(UnsafeURLError, UnsafeInputError)
    assert issubclass(UnsafePathError, ValueError)
    assert issubclass(InsecureSettingsError, SettingsError)
    assert issubclass(InsecureSettingsError, ConfigurationError)


PROBE = """
import logging, threading
threads = threading.active_count()
handlers = len(logging.getLogger().handlers)
import lms_shared.security, lms_shared.ratelimit
assert threading.active_count() == threads, "a thread was started"
assert len(logging.getLogger().handlers) == handlers, "a log handler was installed"
import sys
assert "redis" not in sys.modules, "the redis driver was imported without being chosen"
"""


def test_nothing_happens_at_import() -> None:
    subprocess.run([sys.executable, "-c", PROBE], check=True)
