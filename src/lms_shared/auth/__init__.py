"""Authentication and authorisation: tokens, principals, permissions, API keys.

The core, with no HTTP: the FastAPI glue (``require``, ``optional_principal``,
the authentication middleware, the JWKS and token routes) is in
:mod:`lms_shared.http`::

      from lms_shared.http import require

      @v1.post("/courses", status_code=201)
      async def publish(body: CourseIn, who: Principal = require("course:publish")) -> Course: ...

* :class:`Principal`, :func:`can` and :func:`check` -- who is calling and
  what they may do, in routes, event handlers and plain code;
* :class:`TokenVerifier` (RFC 8725) with :class:`JwksKeys` or
  :class:`StaticKeys`; :class:`TokenSigner` and :class:`SigningKey` to issue
  tokens and publish a JWKS;
* :class:`ApiKeys` over an :class:`ApiKeyStore` (:class:`MemoryApiKeyStore`,
  :class:`DatabaseApiKeyStore`);
* :class:`ClientCredentials` and :class:`ServiceTokenAuth` -- service tokens
  for calls between services;
* :class:`Auth` -- all of it for one service, as ``service.auth``.

See ``docs/auth.md``.
"""

from typing import TYPE_CHECKING, Any

from lms_shared.auth._apikeys import (
    ApiKey,
    ApiKeys,
    ApiKeyStore,
    IssuedApiKey,
    MemoryApiKeyStore,
    hash_api_key,
)
from lms_shared.auth._authenticator import Authenticator
from lms_shared.auth._errors import (
    PROBLEMS,
    AuthenticationFailed,
    FetchFailed,
    InvalidApiKey,
    InvalidCredentials,
    InvalidToken,
    KeysUnavailable,
    PermissionDenied,
    TokenUnavailable,
)
from lms_shared.auth._jwks import JwksKeys, KeySource, StaticKeys
from lms_shared.auth._jwt import DEFAULT_ALGORITHMS, TokenVerifier, VerifierConfig
from lms_shared.auth._keys import VerificationKey, hs256_key, key_from_jwk
from lms_shared.auth._principal import DEFAULT_POLICY, Principal, PrincipalKind
from lms_shared.auth._rbac import DEFAULT_ROLES, PermissionGrant, Policy, can, check
from lms_shared.auth._s2s import ClientCredentials, ServiceTokenAuth, SignerTokens, TokenSource
from lms_shared.auth._service import Auth, AuthConfig
from lms_shared.auth._signer import SigningAlgorithm, SigningKey, TokenSigner

if TYPE_CHECKING:
    from lms_shared.auth._apikey_db import API_KEY_METADATA, DatabaseApiKeyStore

__all__ = [
    "API_KEY_METADATA",
    "DEFAULT_ALGORITHMS",
    "DEFAULT_POLICY",
    "DEFAULT_ROLES",
    "PROBLEMS",
    "ApiKey",
    "ApiKeyStore",
    "ApiKeys",
    "Auth",
    "AuthConfig",
    "AuthenticationFailed",
    "Authenticator",
    "ClientCredentials",
    "DatabaseApiKeyStore",
    "FetchFailed",
    "InvalidApiKey",
    "InvalidCredentials",
    "InvalidToken",
    "IssuedApiKey",
    "JwksKeys",
    "KeySource",
    "KeysUnavailable",
    "MemoryApiKeyStore",
    "PermissionDenied",
    "PermissionGrant",
    "Policy",
    "Principal",
    "PrincipalKind",
    "ServiceTokenAuth",
    "SignerTokens",
    "SigningAlgorithm",
    "SigningKey",
    "StaticKeys",
    "TokenSigner",
    "TokenSource",
    "TokenUnavailable",
    "TokenVerifier",
    "VerificationKey",
    "VerifierConfig",
    "can",
    "check",
    "hash_api_key",
    "hs256_key",
    "key_from_jwk",
]

_DATABASE = frozenset({"API_KEY_METADATA", "DatabaseApiKeyStore"})


def __getattr__(name: str) -> Any:
    # the database store imports SQLAlchemy: only services that use it pay for it
    if name in _DATABASE:
        from lms_shared.auth import _apikey_db  # noqa: PLC0415

        return getattr(_apikey_db, name)
    raise AttributeError(f"module 'lms_shared.auth' has no attribute {name!r}")
