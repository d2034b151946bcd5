"""Security toolkit: encryption, secrets and configuration, sanitising (no HTTP).

* **Encryption** (``cryptography``, AES-256-GCM): :class:`Keyring` (key
  ids, rotation, re-encryption), :class:`Envelope` (per-record data keys
  wrapped by a KEK), :func:`encrypt_field` / :func:`decrypt_field` (values
  bound to table, column and row).
* **Webhooks**: :class:`WebhookSigner` / :class:`WebhookVerifier`
  (Standard Webhooks HMAC-SHA256, timestamp window, replay cache).
* **Passwords**: :class:`PasswordHasher` (argon2id, rehash on login).
* **Configuration**: :func:`check_production_settings` (production refuses
  missing, default and weak secrets). Redaction of secrets and personal
  data is the leaf :mod:`lms_shared.redaction`.
* **Input**: :func:`sanitize_html` / :data:`SafeHtml` (nh3, LMS allowlist),
  :func:`safe_filename` / :func:`safe_path`, :class:`UrlGuard` /
  :data:`PublicUrl` (SSRF guard) and :class:`GuardedTransport` (httpx, pinned
  to the checked address), :func:`clean_text` and friends.

The HTTP side of security (OWASP secure headers, CORS, trusted proxies) is
glue and lives in :mod:`lms_shared.http`.
"""

from lms_shared.security._config import (
    MIN_SECRET_LENGTH,
    check_production_settings,
    envelope_from_settings,
    insecure_settings,
    keyring_from_settings,
    secret_weakness,
)
from lms_shared.security._envelope import Envelope
from lms_shared.security._errors import (
    PROBLEMS,
    DecryptionError,
    InsecureSettingsError,
    PasswordHashError,
    SecurityError,
    UnknownKeyId,
    UnsafeInputError,
    UnsafePathError,
    UnsafeURLError,
)
from lms_shared.security._fetch import GuardedTransport
from lms_shared.security._fields import (
    Cipher,
    decrypt_field,
    encrypt_field,
    field_context,
    field_needs_reencrypt,
    reencrypt_field,
)
from lms_shared.security._files import SafeFilename, safe_filename, safe_path
from lms_shared.security._html import (
    LMS_HTML_ATTRIBUTES,
    LMS_HTML_TAGS,
    HtmlSanitizer,
    SafeHtml,
    sanitize_html,
)
from lms_shared.security._keyring import Key, Keyring, new_key_spec
from lms_shared.security._passwords import PasswordHasher
from lms_shared.security._text import (
    CleanLine,
    CleanText,
    Identifier,
    clean_line,
    clean_text,
    normalize_identifier,
    strip_control_chars,
)
from lms_shared.security.urls import PublicUrl, UrlGuard

__all__ = [
    "LMS_HTML_ATTRIBUTES",
    "LMS_HTML_TAGS",
    "MIN_SECRET_LENGTH",
    "PROBLEMS",
    "Cipher",
    "CleanLine",
    "CleanText",
    "DecryptionError",
    "Envelope",
    "GuardedTransport",
    "HtmlSanitizer",
    "Identifier",
    "InsecureSettingsError",
    "Key",
    "Keyring",
    "PasswordHashError",
    "PasswordHasher",
    "PublicUrl",
    "SafeFilename",
    "SafeHtml",
    "SecurityError",
    "UnknownKeyId",
    "UnsafeInputError",
    "UnsafePathError",
    "UnsafeURLError",
    "UrlGuard",
    "check_production_settings",
    "clean_line",
    "clean_text",
    "decrypt_field",
    "encrypt_field",
    "envelope_from_settings",
    "field_context",
    "field_needs_reencrypt",
    "insecure_settings",
    "keyring_from_settings",
    "new_key_spec",
    "normalize_identifier",
    "reencrypt_field",
    "safe_filename",
    "safe_path",
    "sanitize_html",
    "secret_weakness",
    "strip_control_chars",
]
