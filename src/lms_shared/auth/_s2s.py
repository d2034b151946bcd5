"""Service-to-service calls: short-lived tokens for the callee, attached by httpx.

Each service is an OAuth 2.0 client of the identity service. Before it
calls ``enrollments`` it asks identity's token endpoint for a token whose
audience is ``enrollments`` (RFC 6749 section 4.4, client credentials),
keeps it until shortly before it expires, and sends it as a bearer token.
The callee verifies it like any other token (same JWKS) and sees a
``Principal(kind="service", subject="grading", roles={"service"})``.

Why client credentials rather than JWT assertions signed by each caller:
the callees already trust one issuer and one JWKS; with assertions every
service would hold a private key and every callee would fetch and trust
every caller's keys (N x M trust, N key rotations). Identity also becomes
the one place that can disable a client. Its cost -- one token request per
caller, callee and ``ttl`` -- is paid outside the request path most of the
time, thanks to the cache.

:class:`ServiceTokenAuth` is an ``httpx.Auth``: give it to the
``httpx.AsyncClient`` that calls the callee, and a 401 ``invalid_token``
(a key rotated, a token revoked) makes it fetch a fresh token and retry
once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from typing import Protocol

import httpx
from pydantic import SecretStr

from lms_shared.auth._errors import TokenUnavailable
from lms_shared.auth._principal import Principal
from lms_shared.auth._signer import TokenSigner
from lms_shared.caching import BoundedCache
from lms_shared.clock import Clock
from lms_shared.observability import get_logger

__all__ = ["ClientCredentials", "ServiceTokenAuth", "SignerTokens", "TokenSource"]


class TokenSource(Protocol):
    """Gives access tokens for calls to other services."""

    async def token(self, audience: str) -> str:
        """A valid token whose audience is ``audience``."""
        ...

    def invalidate(self, audience: str, token: str) -> None:
        """Forget ``token`` (the callee refused it)."""
        ...


class _Cache:
    """Tokens per audience until shortly before they expire, one lock per audience (bounded)."""

    def __init__(self, clock: Clock, margin: float, size: int = 256) -> None:
        self.margin = margin
        self.tokens: BoundedCache[str, str] = BoundedCache(size, clock=clock)
        self.locks: BoundedCache[str, asyncio.Lock] = BoundedCache(size)

    def get(self, audience: str) -> str | None:
        return self.tokens.get(audience)

    def put(self, audience: str, token: str, expires_in: float) -> None:
        margin = min(self.margin, expires_in / 2)
        self.tokens.set(audience, token, ttl=expires_in - margin)

    def lock(self, audience: str) -> asyncio.Lock:
        lock = self.locks.get(audience)
        if lock is None:
            lock = asyncio.Lock()
            self.locks.set(audience, lock)
        return lock

    def drop(self, audience: str, token: str) -> None:
        if self.tokens.get(audience) == token:
            self.tokens.pop(audience)


class ClientCredentials:
    """Obtains service tokens from the identity service's token endpoint.

    A lifecycle component: the HTTP client opens at start-up. Tokens are
    cached per audience until ``margin`` seconds before they expire, and
    concurrent callers share one request.

    Args:
        token_url: identity's token endpoint (``http://identity/oauth2/token``).
        client_id: this service's client id (its name).
        client_secret: its secret.
        clock: drives the cache.
        margin: seconds before expiry a token is replaced.
        timeout: seconds one token request may take.
        transport: an httpx transport (tests); the network by default.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr | str,
        *,
        clock: Clock,
        margin: float = 30.0,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = "auth-service-tokens"
        self.token_url = token_url
        self.client_id = client_id
        self._secret = SecretStr(client_secret) if isinstance(client_secret, str) else client_secret
        self.timeout = timeout
        self.requests = 0
        self._cache = _Cache(clock, margin)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self.log = get_logger("lms.auth.tokens", client_id=client_id)

    async def start(self) -> None:
        """Open the HTTP client (no token is fetched until one is needed)."""
        self._client = httpx.AsyncClient(timeout=self.timeout, transport=self._transport)

    async def stop(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def token(self, audience: str) -> str:
        """A cached or new token for ``audience``.

        Raises:
            TokenUnavailable: identity is unreachable or refused (503).
        """
        token = self._cache.get(audience)
        if token is not None:
            return token
        async with self._cache.lock(audience):
            token = self._cache.get(audience)
            if token is None:
                token, expires_in = await self._request(audience)
                self._cache.put(audience, token, expires_in)
        return token

    def invalidate(self, audience: str, token: str) -> None:
        """Forget ``token`` so the next call fetches a new one."""
        self._cache.drop(audience, token)

    async def _request(self, audience: str) -> tuple[str, float]:
        if self._client is None:
            raise TokenUnavailable("the service token client is not started")
        self.requests += 1
        data = {"grant_type": "client_credentials", "audience": audience}
        auth = (self.client_id, self._secret.get_secret_value())
        try:
            response = await self._client.post(self.token_url, data=data, auth=auth)
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            self.log.warning("token request failed", audience=audience, error=str(exc)[:200])
            raise TokenUnavailable("the identity service is unreachable") from exc
        if not isinstance(body, dict):
            self.log.warning(
                "token request refused", audience=audience, status=response.status_code
            )
            raise TokenUnavailable(f"the identity service refused a token for {audience!r}")
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not isinstance(expires_in, int | float) or expires_in <= 0:
            raise TokenUnavailable("the identity service answered an unexpected token response")
        return token, float(expires_in)


class SignerTokens:
    """Mints service tokens with a local signer (identity itself; tests).

    Args:
        signer: the signer (its clock drives the cache).
        principal: who the tokens are for (``kind="service"``).
        ttl: lifetime of each token in seconds.
        margin: seconds before expiry a token is replaced.
    """

    def __init__(
        self, signer: TokenSigner, principal: Principal, *, ttl: float = 300.0, margin: float = 30.0
    ) -> None:
        self.signer = signer
        self.principal = principal
        self.ttl = ttl
        self._cache = _Cache(signer.clock, margin)

    async def token(self, audience: str) -> str:
        """A cached or new token for ``audience``."""
        token = self._cache.get(audience)
        if token is None:
            token = self.signer.issue(self.principal, audience=audience, ttl=self.ttl)
            self._cache.put(audience, token, self.ttl)
        return token

    def invalidate(self, audience: str, token: str) -> None:
        """Forget ``token``."""
        self._cache.drop(audience, token)


class ServiceTokenAuth(httpx.Auth):
    """``httpx.Auth`` that sends a service token for ``audience`` on every request.

    Args:
        source: where tokens come from (:class:`ClientCredentials`, ...).
        audience: the callee's name.
    """

    requires_request_body = True  # the body is replayed on the one retry

    def __init__(self, source: TokenSource, audience: str) -> None:
        self.source = source
        self.audience = audience

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Not supported: service tokens are fetched asynchronously.

        Raises:
            RuntimeError: always; use an ``httpx.AsyncClient``.
        """
        raise RuntimeError("ServiceTokenAuth needs an httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Attach the token; on 401 ``invalid_token`` get a new one and retry once."""
        token = await self.source.token(self.audience)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and "invalid_token" in response.headers.get(
            "www-authenticate", ""
        ):
            self.source.invalidate(self.audience, token)
            token = await self.source.token(self.audience)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
