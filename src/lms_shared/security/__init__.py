"""Security toolkit: encryption, secrets and configuration, sanitising, headers.

* **Encryption** (``cryptography``, AES-256-GCM): :class:`Keyring` (key
  ids, rotation, re-encryption), :class:`Envelope` (per-record data keys
  wrapped by a KEK), :func:`encrypt_field` / :func:`decrypt_field` (values
  bound to table, column and row).
* **Webhooks**: :class:`WebhookSigner` / :class:`WebhookVerifier`
  (Standard Webhooks HMAC-SHA256, timestamp window, replay cache).
* **Passwords**: :class:`PasswordHasher` (argon2id, rehash on login).
* **Configuration**: :func:`check_production_settings` (production refuses
  missing, default and weak secrets), :class:`Redactor` (secrets and
  personal data out of logs and dumps).
* **Input**: :func:`sanitize_html` / :data:`SafeHtml` (nh3, LMS allowlist),
  :func:`safe_filename` / :func:`safe_path`, :class:`UrlGuard` /
  :data:`PublicUrl` (SSRF guard) and :class:`GuardedTransport` (httpx, pinned
  to the checked address), :func:`clean_text` and friends.
* **HTTP**: :class:`SecurityHeadersMiddleware` (OWASP headers, pure ASGI),
  :class:`CorsPolicy`, :class:`TrustedProxies`.

The offline vulnerability audit is the command
``python -m lms_shared.security.audit`` (``make audit``).
"""

from lms_shared.security._config import (
    MIN_SECRET_LENGTH,
    check_production_settings,
    envelope_from_settings,
    insecure_settings,
    keyring_from_settings,
    secret_weakness,
)
from lms_shared.security._cors import EXPOSED_HEADERS, CorsPolicy
from lms_shared.security._envelope import Envelope
from lms_shared.security._errors import (
    INVALID_WEBHOOK_SIGNATURE,
    DecryptionError,
    InsecureSettingsError,
    PasswordHashError,
    SecurityError,
    UnknownKeyId,
    UnsafeInputError,
    UnsafePathError,
    UnsafeURLError,
    WebhookReplayError,
    WebhookSignatureError,
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
from lms_shared.security._headers import (
    API_CSP,
    CLEAR_SITE_DATA,
    DOCS_CSP,
    OWASP_HEADERS,
    REMOVED_HEADERS,
    SecurityHeadersMiddleware,
)
from lms_shared.security._html import (
    LMS_HTML_ATTRIBUTES,
    LMS_HTML_TAGS,
    HtmlSanitizer,
    SafeHtml,
    sanitize_html,
)
from lms_shared.security._keyring import Key, Keyring, new_key_spec
from lms_shared.security._passwords import PasswordHasher
from lms_shared.security._proxies import TrustedProxies
from lms_shared.security._redaction import MASK, PII_KEYS, SECRET_KEYS, Redactor
from lms_shared.security._text import (
    CleanLine,
    CleanText,
    Identifier,
    clean_line,
    clean_text,
    normalize_identifier,
    strip_control_chars,
)
from lms_shared.security._urls import (
    CheckedURL,
    PublicUrl,
    Resolver,
    SystemResolver,
    UrlGuard,
    parse_ipv4_host,
)
from lms_shared.security._webhooks import (
    MemoryReplayCache,
    ReplayCache,
    WebhookMessage,
    WebhookSigner,
    WebhookVerifier,
    new_webhook_secret,
)

__all__ = [
    "API_CSP",
    "CLEAR_SITE_DATA",
    "DOCS_CSP",
    "EXPOSED_HEADERS",
    "INVALID_WEBHOOK_SIGNATURE",
    "LMS_HTML_ATTRIBUTES",
    "LMS_HTML_TAGS",
    "MASK",
    "MIN_SECRET_LENGTH",
    "OWASP_HEADERS",
    "PII_KEYS",
    "REMOVED_HEADERS",
    "SECRET_KEYS",
    "CheckedURL",
    "Cipher",
    "CleanLine",
    "CleanText",
    "CorsPolicy",
    "DecryptionError",
    "Envelope",
    "GuardedTransport",
    "HtmlSanitizer",
    "Identifier",
    "InsecureSettingsError",
    "Key",
    "Keyring",
    "MemoryReplayCache",
    "PasswordHashError",
    "PasswordHasher",
    "PublicUrl",
    "Redactor",
    "ReplayCache",
    "Resolver",
    "SafeFilename",
    "SafeHtml",
    "SecurityError",
    "SecurityHeadersMiddleware",
    "SystemResolver",
    "TrustedProxies",
    "UnknownKeyId",
    "UnsafeInputError",
    "UnsafePathError",
    "UnsafeURLError",
    "UrlGuard",
    "WebhookMessage",
    "WebhookReplayError",
    "WebhookSignatureError",
    "WebhookSigner",
    "WebhookVerifier",
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
    "new_webhook_secret",
    "normalize_identifier",
    "parse_ipv4_host",
    "reencrypt_field",
    "safe_filename",
    "safe_path",
    "sanitize_html",
    "secret_weakness",
    "strip_control_chars",
]
