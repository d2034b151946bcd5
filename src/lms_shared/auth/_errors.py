"""The errors of authentication and authorisation, and their challenges.

Every error here is a :class:`~lms_shared.errors.ProblemError`, so a route
or dependency that lets one escape answers with an RFC 9457 problem::

    ProblemError
    ├── AuthenticationFailed    401  no credentials, or they are not accepted
    │   ├── InvalidToken        401  a bearer token failed a check (RFC 6750 invalid_token)
    │   └── InvalidApiKey       401  an API key is unknown, expired or revoked
    ├── InvalidCredentials      400  two credentials, or a malformed Authorization header
    ├── PermissionDenied        403  authenticated, but not allowed (insufficient_scope)
    └── ServiceUnavailable
        ├── KeysUnavailable     503  no verification key could be loaded yet
        └── TokenUnavailable    503  no service token for an outgoing call

``detail`` says what failed in words safe to show a client: never a token,
a key or a claim value. The HTTP boundary (:class:`Authenticator`) adds
the ``WWW-Authenticate`` challenge of RFC 6750 section 3.
"""

from __future__ import annotations

from lms_shared import errors
from lms_shared.errors import ErrorCode, LmsError, ProblemError, ServiceUnavailable

__all__ = [
    "PROBLEMS",
    "AuthenticationFailed",
    "FetchFailed",
    "InvalidApiKey",
    "InvalidCredentials",
    "InvalidToken",
    "KeysUnavailable",
    "PermissionDenied",
    "TokenUnavailable",
    "challenge",
]

INVALID_TOKEN = errors.ErrorCode("invalid-token", 401, "Invalid credentials")
INSUFFICIENT_PERMISSION = errors.ErrorCode("insufficient-permission", 403, "Permission denied")
INVALID_AUTH_REQUEST = errors.ErrorCode(
    "invalid-authorization", 400, "Malformed authorization request"
)

PROBLEMS: tuple[ErrorCode, ...] = (
    INVALID_TOKEN,
    INSUFFICIENT_PERMISSION,
    INVALID_AUTH_REQUEST,
)
"""The problem codes of this module, for the service's catalogue."""


class AuthenticationFailed(ProblemError):
    """401: the request carries no credentials, or none this service accepts.

    Attributes:
        error: the RFC 6750 error code for the challenge (``None`` when
            the request simply had no credentials, as section 3.1 asks).
    """

    code = errors.UNAUTHORIZED
    error: str | None = None


class InvalidToken(AuthenticationFailed):
    """401: a bearer token is malformed, expired, or fails a signature or claim check."""

    code = INVALID_TOKEN
    error = "invalid_token"


class InvalidApiKey(AuthenticationFailed):
    """401: an API key is malformed, unknown, expired or revoked."""

    code = INVALID_TOKEN
    error = "invalid_token"


class InvalidCredentials(ProblemError):
    """400: the credentials are ambiguous or the header is malformed (invalid_request)."""

    code = INVALID_AUTH_REQUEST
    error = "invalid_request"


class PermissionDenied(ProblemError):
    """403: the principal is authenticated but lacks a permission.

    Attributes:
        permission: the permission that was checked, e.g. ``grade:write``.
    """

    code = INSUFFICIENT_PERMISSION
    error = "insufficient_scope"

    def __init__(self, permission: str, detail: str | None = None) -> None:
        self.permission = permission
        super().__init__(detail or f"this action needs the {permission!r} permission")


class KeysUnavailable(ServiceUnavailable):
    """503: the token's keys could not be loaded (the identity service is unreachable)."""


def challenge(
    realm: str,
    *,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    api_keys: bool = False,
) -> str:
    """A ``WWW-Authenticate`` value: a Bearer challenge, then ``ApiKey`` if accepted.

    Args:
        realm: the protection space, the service's name.
        error: RFC 6750 error code (``invalid_token``, ``insufficient_scope``).
        description: the ``error_description`` (ASCII, quotes removed).
        scope: the permission that was missing, for ``insufficient_scope``.
        api_keys: also offer the ``ApiKey`` scheme.
    """
    params = [f'realm="{_quoted(realm)}"']
    if error is not None:
        params.append(f'error="{error}"')
    if description:
        params.append(f'error_description="{_quoted(description)}"')
    if scope:
        params.append(f'scope="{_quoted(scope)}"')
    value = "Bearer " + ", ".join(params)
    if api_keys:
        value += f', ApiKey realm="{_quoted(realm)}"'
    return value


def _quoted(text: str) -> str:
    # RFC 6750 3: error_description is %x20-21 / %x23-5B / %x5D-7E
    return "".join(ch for ch in text if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')


class TokenUnavailable(ServiceUnavailable):
    """503: a service token for an outgoing call could not be obtained."""


class FetchFailed(LmsError):
    """The JWKS document could not be fetched or held no usable key.

    Internal to the key cache, which turns it into :class:`KeysUnavailable`
    for callers; exported so custom key sources can raise it too.
    """
