"""The errors of the security toolkit, grafted onto :mod:`lms_shared.errors`.

::

    LmsError
    ├── ConfigurationError
    │   └── SettingsError
    │       └── InsecureSettingsError   production refuses missing/default/weak secrets
    └── SecurityError                   root of the toolkit's run-time errors
        ├── DecryptionError             tampered, truncated, wrong key or context
        │   └── UnknownKeyId            the ciphertext names a key the keyring lacks
        ├── WebhookSignatureError       400: missing, malformed or wrong signature
        │   └── WebhookReplayError      400: stale timestamp or a message seen before
        ├── PasswordHashError           a stored hash is corrupt or of another scheme
        └── UnsafeInputError            also a ValueError, so pydantic reports it
            ├── UnsafeURLError          scheme, host or address refused (SSRF guard)
            └── UnsafePathError         a path escapes its base folder

Nothing here ever carries a plaintext, a key or a secret in its message.
"""

from __future__ import annotations

from lms_shared.errors import ErrorCode, LmsError, ProblemError, SettingsError

__all__ = [
    "INVALID_WEBHOOK_SIGNATURE",
    "PROBLEMS",
    "DecryptionError",
    "InsecureSettingsError",
    "PasswordHashError",
    "SecurityError",
    "UnknownKeyId",
    "UnsafeInputError",
    "UnsafePathError",
    "UnsafeURLError",
    "WebhookReplayError",
    "WebhookSignatureError",
]

INVALID_WEBHOOK_SIGNATURE = ErrorCode("invalid-webhook-signature", 400, "Webhook signature invalid")

PROBLEMS: tuple[ErrorCode, ...] = (INVALID_WEBHOOK_SIGNATURE,)
"""The problem codes of this module, for the service's catalogue."""


class SecurityError(LmsError):
    """Root of the run-time errors of :mod:`lms_shared.security`."""


class DecryptionError(SecurityError):
    """A ciphertext could not be decrypted; no part of the plaintext is returned.

    Raised for truncated or malformed tokens, a failed authentication tag
    (tampering, a wrong key, or associated data of another row/column).
    """


class UnknownKeyId(DecryptionError):
    """The ciphertext was made with a key id the keyring does not hold.

    Attributes:
        key_id: the key id named by the ciphertext.
    """

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"no key with id {key_id!r} in the keyring")


class WebhookSignatureError(SecurityError, ProblemError):
    """A webhook's signature headers are missing, malformed or do not match."""

    code = INVALID_WEBHOOK_SIGNATURE


class WebhookReplayError(WebhookSignatureError):
    """A correctly signed webhook outside the time window, or delivered twice."""


class PasswordHashError(SecurityError):
    """A stored password hash cannot be read (corrupt, or not argon2)."""


class UnsafeInputError(SecurityError, ValueError):
    """Input refused by a sanitiser; a ``ValueError`` so pydantic reports it."""


class UnsafeURLError(UnsafeInputError):
    """A URL refused by the SSRF guard (scheme, host, port or address)."""


class UnsafePathError(UnsafeInputError):
    """A file name or path that is empty or escapes its base folder."""


class InsecureSettingsError(SettingsError):
    """Production refuses to start: secrets missing, default or weak.

    ``problems`` names each ``LMS_*`` variable and why, never its value.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(problems)
        lines = "\n".join(f"  {var}: {msg}" for var, msg in problems)
        self.args = (f"insecure settings, refusing to start in production:\n{lines}",)
