"""Credentials of an HTTP request to a principal, with RFC 6750 challenges.

A request authenticates with exactly one of

* ``Authorization: Bearer <access token>`` (a JWT, see :class:`TokenVerifier`),
* ``Authorization: ApiKey <key>`` or ``X-API-Key: <key>`` (see :class:`ApiKeys`).

Two credentials, a repeated header or a malformed ``Authorization`` value
is a 400 ``invalid_request``; none is a 401 with a bare challenge; a
rejected one is a 401 ``invalid_token``. Every 401 and 403 carries a
``WWW-Authenticate`` header naming the realm (the service) and, for
failures, the RFC 6750 error code.
"""

from __future__ import annotations

from collections.abc import Iterable

from lms_shared.auth._apikeys import ApiKeys
from lms_shared.auth._errors import (
    AuthenticationFailed,
    InvalidCredentials,
    InvalidToken,
    PermissionDenied,
    challenge,
)
from lms_shared.auth._jwt import TokenVerifier
from lms_shared.auth._principal import Principal
from lms_shared.errors import ProblemError, ServiceUnavailable

NOT_CONFIGURED = (
    "auth: not configured (set LMS_AUTH_JWKS_URL and LMS_AUTH_ISSUER, or LMS_AUTH_HS256_SECRET)"
)
"""Why a service with no token verifier answers 503 and is not ready."""

__all__ = ["NOT_CONFIGURED", "Authenticator"]

_AUTHORIZATION = b"authorization"
_API_KEY = b"x-api-key"
_BEARER = (b"Bearer ", b"bearer ")
_CREDENTIALS = (_AUTHORIZATION, _API_KEY)
MAX_CREDENTIAL_BYTES = 16384


class Authenticator:
    """Turns request headers into a :class:`Principal`, or a problem with a challenge.

    Args:
        realm: the protection space in challenges (the service's name).
        verifier: checks bearer tokens; ``None`` refuses them (503: not configured).
        api_keys: checks API keys; ``None`` refuses them (401).
    """

    def __init__(
        self,
        realm: str,
        *,
        verifier: TokenVerifier | None = None,
        api_keys: ApiKeys | None = None,
    ) -> None:
        self.realm = realm
        self.verifier = verifier
        self.api_keys = api_keys

    def cached(self, headers: Iterable[tuple[bytes, bytes]]) -> Principal | None:
        """The principal of a bearer token verified before, without awaiting; else ``None``.

        The hot path of :func:`require`: anything unusual (no credentials,
        two of them, an API key, a token not in the cache) returns ``None``
        and goes through :meth:`authenticate`, which explains.
        """
        verifier = self.verifier
        if verifier is None:
            return None
        found: bytes | None = None
        for name, value in headers:
            if name in _CREDENTIALS:
                if found is not None or name == _API_KEY:
                    return None
                found = value
        if found is None or found[:7] not in _BEARER:
            return None
        return verifier.cached(found[7:].decode("latin-1"))

    async def authenticate(self, headers: Iterable[tuple[bytes, bytes]]) -> Principal:
        """The principal of a request's raw ASGI headers.

        Raises:
            AuthenticationFailed: no credentials, or rejected ones (401).
            InvalidCredentials: ambiguous or malformed credentials (400).
            ServiceUnavailable: the credentials cannot be checked now (503).
        """
        if self.verifier is None and self.api_keys is None:
            raise ServiceUnavailable(NOT_CONFIGURED)  # nothing could ever authenticate
        authorization: bytes | None = None
        api_key: bytes | None = None
        for name, value in headers:
            if name == _AUTHORIZATION:
                if authorization is not None:
                    raise self._challenged(InvalidCredentials("repeated Authorization header"))
                authorization = value
            elif name == _API_KEY:
                if api_key is not None:
                    raise self._challenged(InvalidCredentials("repeated X-API-Key header"))
                api_key = value
        try:
            if authorization is not None:
                if api_key is not None:
                    raise InvalidCredentials("send either Authorization or X-API-Key, not both")
                return await self._authorization(authorization)
            if api_key is not None:
                return await self._api_key(api_key)
        except ProblemError as exc:
            raise self._challenged(exc) from None
        raise self._challenged(AuthenticationFailed("this request needs credentials"))

    async def _authorization(self, value: bytes) -> Principal:
        if len(value) > MAX_CREDENTIAL_BYTES:
            raise InvalidToken("the credentials are too large")
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidToken("the credentials are not ASCII") from None
        scheme, _, credentials = text.partition(" ")
        credentials = credentials.strip(" ")
        if not credentials or " " in credentials:
            raise InvalidCredentials("the Authorization header is not '<scheme> <credentials>'")
        scheme = scheme.lower()
        if scheme == "bearer":
            if self.verifier is None:
                raise ServiceUnavailable(NOT_CONFIGURED)
            return await self.verifier.verify(credentials)
        if scheme == "apikey":
            return await self._api_key(credentials.encode("ascii"))
        raise AuthenticationFailed(f"the {scheme[:20]!r} authorization scheme is not accepted")

    async def _api_key(self, value: bytes) -> Principal:
        if self.api_keys is None:
            raise AuthenticationFailed("this service does not accept API keys")
        if len(value) > 256:
            raise InvalidToken("the API key is malformed")
        try:
            key = value.decode("ascii").strip(" ")
        except UnicodeDecodeError:
            raise InvalidToken("the API key is malformed") from None
        return await self.api_keys.authenticate(key)

    def _challenged(self, exc: ProblemError) -> ProblemError:
        error = getattr(exc, "error", None)
        if isinstance(exc, PermissionDenied):
            value = challenge(self.realm, error=error, scope=exc.permission)
        elif isinstance(exc, AuthenticationFailed | InvalidCredentials) and error is not None:
            value = challenge(
                self.realm, error=error, description=exc.detail, api_keys=self.api_keys is not None
            )
        elif isinstance(exc, AuthenticationFailed):
            value = challenge(self.realm, api_keys=self.api_keys is not None)
        else:
            return exc
        exc.headers.setdefault("WWW-Authenticate", value)
        return exc

    def denied(self, exc: PermissionDenied) -> PermissionDenied:
        """Add the ``insufficient_scope`` challenge to a 403."""
        self._challenged(exc)
        return exc
