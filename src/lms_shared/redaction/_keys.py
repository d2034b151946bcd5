"""The one list of secret and personal-data keys, and the one mask.

Everything that hides values (log lines, settings dumps, problem
extensions, operator views of models) reads these names, so a key added
here is masked everywhere.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MASK", "PII_KEYS", "SECRET_KEYS", "SECRET_MARKERS"]

MASK: Final = "**********"
"""What a secret or personal value is replaced with, everywhere."""

SECRET_KEYS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "private_key",
        "secret_key",
        "encryption_key",
        "key_encryption_key",
        "encryption_keys",
        "client_secret",
        "session",
        "session_id",
        "signature",
        "webhook_signature",
        "credentials",
        "otp",
        "totp",
        "mfa_code",
        "recovery_code",
    }
)
"""Key names (and suffixes) whose values are secrets."""

PII_KEYS: frozenset[str] = frozenset(
    {
        "email",
        "email_address",
        "phone",
        "phone_number",
        "mobile",
        "address",
        "street",
        "postal_code",
        "zip_code",
        "date_of_birth",
        "birth_date",
        "birthdate",
        "dob",
        "ssn",
        "national_id",
        "passport_number",
        "tax_id",
        "iban",
        "card_number",
        "first_name",
        "last_name",
        "full_name",
        "given_name",
        "family_name",
        "display_name",
        "postal_address",
    }
)
"""Key names (and suffixes) whose values are personal data (GDPR/FERPA)."""


SECRET_MARKERS: Final = ("secret", "password", "token", "key")
"""Substrings that make a *setting's* name secret (``auth_client_secret``,
``encryption_keys``): settings are few and named by us, so a broader match
than the exact key names above is safe there."""
