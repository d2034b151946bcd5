"""The security package's public names, and nothing happening at import."""

from __future__ import annotations

import subprocess
import sys

import lms_shared.security
from lms_shared import ConfigurationError, LmsError, ProblemError, SettingsError
from lms_shared.security import (
    DecryptionError,
    InsecureSettingsError,
    SecurityError,
    UnknownKeyId,
    UnsafeInputError,
    UnsafePathError,
    UnsafeURLError,
    WebhookReplayError,
    WebhookSignatureError,
)

EXPECTED = [
    "API_CSP", "CLEAR_SITE_DATA", "CheckedURL", "Cipher", "CleanLine", "CleanText",
    "CorsPolicy", "DOCS_CSP", "DecryptionError", "EXPOSED_HEADERS", "Envelope", "GuardedTransport",
    "HtmlSanitizer", "INVALID_WEBHOOK_SIGNATURE", "Identifier", "InsecureSettingsError",
    "Key", "Keyring", "LMS_HTML_ATTRIBUTES", "LMS_HTML_TAGS", "MASK", "MIN_SECRET_LENGTH",
    "MemoryReplayCache", "OWASP_HEADERS", "PII_KEYS", "PasswordHashError", "PasswordHasher",
    "PublicUrl", "REMOVED_HEADERS", "Redactor", "ReplayCache", "Resolver", "SECRET_KEYS",
    "SafeFilename", "SafeHtml", "SecurityError", "SecurityHeadersMiddleware",
    "SystemResolver", "TrustedProxies", "UnknownKeyId", "UnsafeInputError",
    "UnsafePathError", "UnsafeURLError", "UrlGuard", "WebhookMessage", "WebhookReplayError",
    "WebhookSignatureError", "WebhookSigner", "WebhookVerifier", "check_production_settings",
    "clean_line", "clean_text", "decrypt_field", "encrypt_field", "envelope_from_settings",
    "field_context", "field_needs_reencrypt", "insecure_settings", "keyring_from_settings",
    "new_key_spec", "new_webhook_secret", "normalize_identifier", "parse_ipv4_host",
    "reencrypt_field", "safe_filename", "safe_path", "sanitize_html", "secret_weakness",
    "strip_control_chars",
]  # fmt: skip


def test_public_names() -> None:
    assert sorted(lms_shared.security.__all__) == sorted(EXPECTED)
    for name in EXPECTED:
        assert hasattr(lms_shared.security, name), name


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
import lms_shared.security, lms_shared.ratelimit, lms_shared.security.audit
assert threading.active_count() == threads, "a thread was started"
assert len(logging.getLogger().handlers) == handlers, "a log handler was installed"
import sys
assert "redis" not in sys.modules, "the redis driver was imported without being chosen"
"""


def test_nothing_happens_at_import() -> None:
    subprocess.run([sys.executable, "-c", PROBE], check=True)
