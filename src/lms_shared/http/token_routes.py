"""The identity service's side: the JWKS document and the token endpoint.

``jwks_router(signer)`` serves ``GET /.well-known/jwks.json`` (the bytes
are rendered once per rotation, cacheable for five minutes).
``token_router(signer, clients)`` serves ``POST /oauth2/token``, the
client-credentials grant (RFC 6749 section 4.4) every other service uses
to get service tokens: client authentication with HTTP Basic (or
``client_id``/``client_secret`` in the form), ``audience`` naming the
callee, an optional ``scope`` narrowing the token. Errors are RFC 9457
problems that also carry the RFC 6749 ``error`` code as a member.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import orjson
from fastapi import APIRouter, Request
from pydantic import SecretStr
from starlette.responses import Response

from lms_shared.auth._errors import AuthenticationFailed
from lms_shared.auth._principal import Principal
from lms_shared.auth._rbac import permission_pattern
from lms_shared.auth._signer import TokenSigner
from lms_shared.errors import BAD_REQUEST, UNAUTHORIZED, BadRequest
from lms_shared.http.openapi import problem_responses

__all__ = ["ServiceClients", "jwks_router", "token_router"]

_AUDIENCE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_FORM = "application/x-www-form-urlencoded"
_JWK_SET = "application/jwk-set+json"

# what the OpenAPI document says of the two routes (their bodies are read and
# written by hand, so FastAPI cannot infer them)
_JWKS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The JWK Set of the keys tokens are signed with (RFC 7517 §5)",
        "content": {
            _JWK_SET: {
                "schema": {
                    "type": "object",
                    "required": ["keys"],
                    "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
                }
            }
        },
    }
}
_TOKEN_FORM = {
    "required": True,
    "content": {
        _FORM: {
            "schema": {
                "type": "object",
                "required": ["grant_type", "audience"],
                "properties": {
                    "grant_type": {"type": "string", "enum": ["client_credentials"]},
                    "audience": {"type": "string", "pattern": f"^{_AUDIENCE.pattern}$"},
                    "scope": {"type": "string", "description": "space-separated permissions"},
                    "client_id": {"type": "string", "description": "or HTTP Basic"},
                    "client_secret": {"type": "string", "format": "password"},
                },
            }
        }
    },
}
_TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A service token (RFC 6749 §5.1)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["access_token", "token_type", "expires_in"],
                    "properties": {
                        "access_token": {"type": "string"},
                        "token_type": {"type": "string", "enum": ["Bearer"]},
                        "expires_in": {"type": "integer"},
                        "scope": {"type": "string"},
                    },
                }
            }
        },
    },
    # RFC 6749 §5.2 errors, as problems with the OAuth ``error`` member
    **problem_responses(BAD_REQUEST, UNAUTHORIZED),
}


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class ServiceClients:
    """The registered service clients and their secrets (kept as SHA-256 digests).

    Args:
        clients: client id to secret (``LMS_AUTH_CLIENTS``).
        roles: roles of every service principal.
    """

    def __init__(
        self, clients: Mapping[str, SecretStr | str], *, roles: Iterable[str] = ("service",)
    ) -> None:
        self._digests = {
            cid: _digest(s.get_secret_value() if isinstance(s, SecretStr) else s)
            for cid, s in clients.items()
        }
        self.roles = frozenset(roles)
        self._dummy = _digest("\x00 no such client")

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._digests

    def authenticate(self, client_id: str, secret: str) -> bool:
        """Whether ``secret`` is the client's; constant time, even for unknown ids."""
        expected = self._digests.get(client_id, self._dummy)
        return hmac.compare_digest(expected, _digest(secret)) and client_id in self._digests


def jwks_router(signer: TokenSigner, *, path: str = "/.well-known/jwks.json") -> APIRouter:
    """A router serving the signer's JWKS document."""
    router = APIRouter(tags=["auth"])

    @router.get(
        path,
        summary="Public signing keys (JWKS)",
        response_class=Response,
        responses=_JWKS_RESPONSES,
    )
    async def jwks() -> Response:
        return Response(
            signer.jwks_bytes(),
            media_type=_JWK_SET,
            headers={"cache-control": "public, max-age=300"},
        )

    return router


def _oauth_error(error: str, detail: str) -> BadRequest:
    return BadRequest(detail, error=error)


def _form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode("ascii"), strict_parsing=bool(body), max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise _oauth_error("invalid_request", "the body is not a URL-encoded form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:  # RFC 6749 3.2: no parameter more than once
            raise _oauth_error("invalid_request", f"the parameter {name!r} is repeated")
        form[name] = value
    return form


def _basic(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _oauth_error("invalid_request", "malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _oauth_error("invalid_request", "malformed Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


def token_router(
    signer: TokenSigner,
    clients: ServiceClients,
    *,
    ttl: float = 300.0,
    audiences: Collection[str] | None = None,
    path: str = "/oauth2/token",
    realm: str = "identity",
) -> APIRouter:
    """A router serving the client-credentials token endpoint.

    Args:
        signer: signs the tokens.
        clients: who may ask, with which secret.
        ttl: lifetime of service tokens in seconds.
        audiences: the services tokens may be issued for (any well-formed
            service name if ``None``).
        path: where the endpoint is.
        realm: the realm of the ``Basic`` challenge.
    """
    router = APIRouter(tags=["auth"])
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}

    @router.post(
        path,
        summary="Service token (OAuth 2.0 client credentials)",
        response_class=Response,
        responses=_TOKEN_RESPONSES,
        openapi_extra={"requestBody": _TOKEN_FORM},
    )
    async def token(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != _FORM:
            raise _oauth_error("invalid_request", f"the body must be {_FORM}")
        form = _form(await request.body())
        header = request.headers.get("authorization")
        if header is not None and header[:6].lower() == "basic ":
            if "client_id" in form or "client_secret" in form:
                raise _oauth_error("invalid_request", "use one client authentication method")
            client_id, secret = _basic(header)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not clients.authenticate(client_id, secret):
            raise AuthenticationFailed(
                "client authentication failed", headers=challenge, error="invalid_client"
            )
        if form.get("grant_type") != "client_credentials":
            raise _oauth_error("unsupported_grant_type", "only client_credentials is supported")
        audience = form.get("audience", "")
        if _AUDIENCE.fullmatch(audience) is None or (
            audiences is not None and audience not in audiences
        ):
            raise _oauth_error("invalid_target", "'audience' must name a known service")
        scopes = None
        if "scope" in form:
            try:
                scopes = frozenset(permission_pattern(s) for s in form["scope"].split())
            except ValueError:
                raise _oauth_error("invalid_scope", "a scope is not a permission pattern") from None
        principal = Principal(
            subject=client_id,
            kind="service",
            roles=clients.roles,
            scopes=scopes,
            client_id=client_id,
        )
        access_token = signer.issue(principal, audience=audience, ttl=ttl)
        body: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer"}
        body["expires_in"] = int(ttl)
        if scopes is not None:
            body["scope"] = " ".join(sorted(scopes))
        return Response(
            orjson.dumps(body),
            media_type="application/json",
            headers={"cache-control": "no-store", "pragma": "no-cache"},
        )

    return router
