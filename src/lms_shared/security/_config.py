"""Secure-configuration checks: production refuses to start with bad secrets.

With ``LMS_ENV=production`` the service factory calls
:func:`check_production_settings` before building anything. It collects
every problem (not just the first) and raises one
:class:`InsecureSettingsError` naming each variable and why, never the
value:

* a required secret is missing (``LMS_SECRET_KEY`` by default);
* a secret is a well-known default or placeholder (``changeme``,
  ``secret``, ``password``...), or weak: shorter than 32 characters or
  with too few distinct characters;
* a keyring (``LMS_ENCRYPTION_KEYS``, ``LMS_KEY_ENCRYPTION_KEY``) does
  not parse to random 32-byte keys;
* a URL carries a default password (``postgres:postgres@``,
  ``guest:guest@``);
* ``LMS_TRUSTED_PROXIES`` trusts every address (``0.0.0.0/0``), which
  lets any client forge its address.
* ``LMS_ALLOWED_HOSTS`` is unset or ``*``: the service would answer for
  any ``Host`` a client names.

Outside production the same findings can be listed with
:func:`insecure_settings` (the ``settings`` CLI may show them as warnings).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from pydantic import SecretStr

from lms_shared.errors import SettingsError
from lms_shared.security._envelope import Envelope
from lms_shared.security._errors import InsecureSettingsError
from lms_shared.security._keyring import Keyring
from lms_shared.settings import Settings

__all__ = [
    "MIN_SECRET_LENGTH",
    "check_production_settings",
    "envelope_from_settings",
    "insecure_settings",
    "keyring_from_settings",
    "secret_weakness",
]

MIN_SECRET_LENGTH = 32
_MIN_DISTINCT = 10
_PLACEHOLDERS = (
    "changeme",
    "change-me",
    "change_me",
    "replaceme",
    "replace-me",
    "placeholder",
    "example",
    "insecure",
    "dummy",
    "notsecret",
    "not-a-secret",
    "secret",
    "password",
    "default",
    "letmein",
    "development",
    "12345678",
    "qwerty",
    "xxxxxxxx",
)
_DEFAULT_PASSWORDS = frozenset(
    {"", "postgres", "password", "guest", "root", "admin", "secret", "changeme", "test", "redis"}
)
_KEYRINGS = {
    "encryption_keys": "LMS_ENCRYPTION_KEYS",
    "key_encryption_key": "LMS_KEY_ENCRYPTION_KEY",
}


def secret_weakness(value: str) -> str | None:
    """Why a free-form secret is unfit for production, or ``None``.

    Example:
        >>> secret_weakness("changeme")
        'is a well-known default or placeholder'
    """
    lowered = value.lower()
    if any(word in lowered for word in _PLACEHOLDERS):
        return "is a well-known default or placeholder"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is too short (at least {MIN_SECRET_LENGTH} characters)"
    if len(set(value)) < _MIN_DISTINCT:
        return "is too regular (too few distinct characters); generate it randomly"
    return None


def insecure_settings(
    settings: Settings, *, required: Iterable[str] = ("secret_key",)
) -> list[tuple[str, str]]:
    """Every insecure setting as ``(LMS_VARIABLE, reason)`` pairs."""
    problems: list[tuple[str, str]] = []
    values = dict(settings)
    for name in required:
        if values.get(name) is None:
            problems.append((f"LMS_{name.upper()}", "is required in production but not set"))
    for name, value in values.items():
        variable = f"LMS_{name.upper()}"
        if isinstance(value, SecretStr):
            if name in _KEYRINGS:
                try:
                    Keyring.parse(value, variable=_KEYRINGS[name])
                except SettingsError as exc:
                    problems.extend(exc.problems)
                continue
            reason = secret_weakness(value.get_secret_value())
            if reason:
                problems.append((variable, reason))
        elif name.endswith("_url") and isinstance(value, str):
            reason = _url_weakness(value)
            if reason:
                problems.append((variable, reason))
        elif name.endswith("_urls") and isinstance(value, list):
            for index, url in enumerate(value):
                reason = _url_weakness(str(url))
                if reason:
                    problems.append((variable, f"entry {index} {reason}"))
    if settings.ratelimit_url is None:
        problems.append(
            (
                "LMS_RATELIMIT_URL",
                "is required in production: in-memory rate limits count per process "
                "(set a redis:// URL shared by the instances)",
            )
        )
    hosts = [host.strip() for host in settings.allowed_hosts]
    if not hosts:
        problems.append(
            (
                "LMS_ALLOWED_HOSTS",
                "is required in production: name the hosts clients reach the service by "
                '(a JSON list such as ["api.example.org"]); other hosts get a 400 problem',
            )
        )
    elif "*" in hosts:
        problems.append(("LMS_ALLOWED_HOSTS", "'*' answers for any Host: name the hosts"))
    for entry in settings.trusted_proxies:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(("LMS_TRUSTED_PROXIES", f"{entry!r} is not an address or network"))
            continue
        if network.prefixlen == 0:
            problems.append(
                ("LMS_TRUSTED_PROXIES", f"{entry} trusts every address: clients could forge theirs")
            )
    return problems


def check_production_settings(
    settings: Settings, *, required: Iterable[str] = ("secret_key",)
) -> None:
    """Refuse insecure settings when ``LMS_ENV=production`` (a no-op otherwise).

    Args:
        settings: the service's settings.
        required: secret fields that must be set in production.

    Raises:
        InsecureSettingsError: naming every offending variable.
    """
    if settings.env != "production":
        return
    problems = insecure_settings(settings, required=required)
    if problems:
        raise InsecureSettingsError(problems)


def _url_weakness(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    if password is None:
        return None
    if password.lower() in _DEFAULT_PASSWORDS or password == parts.username:
        return "has a default password"
    return None


def keyring_from_settings(settings: Settings) -> Keyring:
    """The field-encryption keyring of ``LMS_ENCRYPTION_KEYS``.

    Raises:
        SettingsError: the variable is unset or invalid.
    """
    if settings.encryption_keys is None:
        raise SettingsError([("LMS_ENCRYPTION_KEYS", "is required to encrypt fields but not set")])
    return Keyring.parse(settings.encryption_keys)


def envelope_from_settings(settings: Settings) -> Envelope:
    """Envelope encryption under the KEKs of ``LMS_KEY_ENCRYPTION_KEY``.

    Raises:
        SettingsError: the variable is unset or invalid.
    """
    if settings.key_encryption_key is None:
        raise SettingsError(
            [("LMS_KEY_ENCRYPTION_KEY", "is required for envelope encryption but not set")]
        )
    return Envelope.parse(settings.key_encryption_key)
