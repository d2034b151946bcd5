"""How the example services authenticate each other and their users.

Identity signs access tokens (password login) and service tokens (OAuth 2.0
client credentials) and publishes its keys at ``/.well-known/jwks.json``;
courses, enrollments and grading verify tokens against that JWKS and get
their own service tokens from identity's token endpoint. All of it is
configured with the library's ``LMS_AUTH_*`` settings, which
:func:`auth_settings` computes for each service (the demo runner sets them
as environment variables, the in-process tests as explicit settings).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

import httpx

from lms_shared import Service
from lms_shared.auth import ClientCredentials, JwksKeys, SigningKey
from lms_shared.security import new_key_spec

__all__ = [
    "CALLERS",
    "JWKS_PATH",
    "TOKEN_PATH",
    "auth_environ",
    "auth_settings",
    "new_platform_secrets",
    "trust_identity",
]

JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/oauth2/token"
CALLERS = ("courses", "enrollments", "grading")
"""The services that call others, each an OAuth 2.0 client of identity."""


def new_platform_secrets(encryption_keys: str | None = None) -> dict[str, str]:
    """Fresh secrets for one platform run.

    Identity's signing key, each client's secret and identity's field
    encryption keyring (``LMS_ENCRYPTION_KEYS``, for users' phone numbers):
    ``encryption_keys`` when given (the demo keeps its keyring between runs,
    since the encrypted data stays too), a new one otherwise.
    """
    made = {
        "signing_key": SigningKey.generate("ES256").to_pem().decode(),
        "encryption_keys": encryption_keys or new_key_spec("demo-1"),
    }
    made.update({name: secrets.token_urlsafe(32) for name in CALLERS})
    return made


def auth_settings(name: str, identity_url: str, platform: Mapping[str, str]) -> dict[str, Any]:
    """The ``auth_*`` (and identity's ``encryption_keys``) settings of service ``name``.

    They are ``load_settings(**...)`` keywords.

    Args:
        name: the service.
        identity_url: identity's base URL; also the tokens' issuer.
        platform: the secrets from :func:`new_platform_secrets`.
    """
    settings: dict[str, Any] = {"auth_issuer": identity_url}
    if name == "identity":
        settings["auth_signing_keys"] = [platform["signing_key"]]
        settings["auth_clients"] = {caller: platform[caller] for caller in CALLERS}
        settings["encryption_keys"] = platform["encryption_keys"]
    else:
        settings["auth_jwks_url"] = identity_url + JWKS_PATH
        if name in CALLERS:
            settings["auth_token_url"] = identity_url + TOKEN_PATH
            settings["auth_client_secret"] = platform[name]
    return settings


def auth_environ(name: str, identity_url: str, platform: Mapping[str, str]) -> dict[str, str]:
    """:func:`auth_settings` as ``LMS_*`` environment variables."""
    return {
        f"LMS_{key.upper()}": value if isinstance(value, str) else json.dumps(value)
        for key, value in auth_settings(name, identity_url, platform).items()
    }


def trust_identity(service: Service, transport: httpx.AsyncBaseTransport | None) -> None:
    """Reach identity's JWKS and token endpoint through ``transport`` (in-process tests).

    ``create_service`` builds ``service.auth`` from the settings with the
    network as its only transport; this rebuilds the key source and the
    service-token source on ``transport``, with the same settings.
    """
    if transport is None:
        return
    auth, config = service.auth, service.auth.config
    if config.jwks_url is not None:
        auth.use_keys(
            JwksKeys(
                config.jwks_url,
                algorithms=config.algorithms - {"HS256"},
                clock=service.clock,
                refresh_interval=config.jwks_refresh,
                transport=transport,
            )
        )
    if config.token_url is not None and config.client_secret is not None:
        auth.use_tokens(
            ClientCredentials(
                config.token_url,
                config.client_id or config.service,
                config.client_secret,
                clock=service.clock,
                transport=transport,
            )
        )
