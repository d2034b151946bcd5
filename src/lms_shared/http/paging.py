"""One collection envelope and opaque cursor pagination.

Every list endpoint answers with :class:`Page`::

    {"items": [...], "next_cursor": "eyJhZnRlciI6...", "links": {"self": ..., "next": ...}}

Cursors are opaque to clients: a keyset position (never an offset) the
server wrote, sealed with an HMAC under a key derived from
``LMS_SECRET_KEY`` and bound to what it pages: the route template, the
``sort`` parameter and the caller (principal and tenant). :func:`page_params`
opens the request's cursor for that context and gives the handler a
:class:`~lms_shared.models.PageParams` that seals the next one for it; a
cursor a client made up, edited or truncated, or carried to another route,
sort or caller, gets a 400 ``invalid-cursor`` problem. So does an unsigned
cursor of an earlier release: clients start again from the first page.

The caller is the principal ``require`` or ``AuthMiddleware`` found; when
``page_params`` runs first (it usually does: it is declared before
``require``), it authenticates the request's credentials itself, once, and
leaves the principal where ``require`` finds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from lms_shared.errors import BadRequest
from lms_shared.http.auth import SCOPE_KEY, authenticator_of
from lms_shared.http.hosts import install_public_base_url, public_url
from lms_shared.models._canonical import CanonicalInt
from lms_shared.models._paging import (
    DEFAULT_LIMIT,
    MAX_CURSOR_LENGTH,
    MAX_LIMIT,
    CursorBinding,
    CursorSigner,
    PageParams,
)

__all__ = [
    "CursorSigner",
    "Page",
    "PageLinks",
    "install_paging",
    "page_params",
]

STATE_KEY = "lms_cursor_signer"
_ONCE = ("limit", "cursor")
_CREDENTIALS = (b"authorization", b"x-api-key")

T = TypeVar("T")


class PageLinks(BaseModel):
    """Links of a page: relative references, or URLs on ``LMS_PUBLIC_BASE_URL``."""

    self: str = Field(description="this page")
    next: str | None = Field(None, description="the next page, absent on the last one")


class Page(BaseModel, Generic[T]):
    """The collection envelope every list endpoint returns."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [],
                    "next_cursor": "eyJhZnRlciI6IDQyfQ",
                    "links": {
                        "self": "/v1/courses?limit=20",
                        "next": "/v1/courses?limit=20&cursor=eyJhZnRlciI6IDQyfQ",
                    },
                }
            ]
        }
    )

    items: list[T] = Field(description="this page's items, in a stable order")
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")
    links: PageLinks

    @classmethod
    def build(cls, items: Sequence[T], next_cursor: str | None, request: Request) -> Page[T]:
        """A page whose links are the current request's path and query.

        Relative references (``/v1/courses?limit=20``), or on
        ``LMS_PUBLIC_BASE_URL`` when set: never built from the ``Host``
        header, which the client writes.
        """
        url = request.url
        scope = request.scope
        self_url = public_url(scope, scope["path"], url.query)
        next_url = (
            public_url(scope, scope["path"], url.include_query_params(cursor=next_cursor).query)
            if next_cursor
            else None
        )
        return cls(
            items=list(items),
            next_cursor=next_cursor,
            links=PageLinks(self=self_url, next=next_url),
        )


def install_paging(
    app: FastAPI,
    *,
    base_url: str | None = None,
    secret: SecretStr | str | None = None,
    service: str = "",
) -> None:
    """Set up ``Page`` links and cursor sealing in ``app`` (the service does this).

    Args:
        app: the FastAPI app.
        base_url: ``LMS_PUBLIC_BASE_URL``: links are built on it, or
            relative without it (:func:`~lms_shared.http.hosts.public_url`).
        secret: ``LMS_SECRET_KEY``, from which the cursor key is derived;
            without it the key is random and cursors last as long as the
            process (several instances then refuse each other's).
        service: the service's name, part of the key derivation.

    Raises:
        ValueError: ``base_url`` is not an absolute ``http(s)`` URL.
    """
    install_public_base_url(app, base_url)
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    setattr(app.state, STATE_KEY, CursorSigner.from_secret(raw, service=service))


def _signer_of(request: Request) -> CursorSigner:
    state = request.app.state
    signer = getattr(state, STATE_KEY, None)
    if not isinstance(signer, CursorSigner):  # a bare FastAPI app: a key for its lifetime
        signer = CursorSigner.from_secret(None, service="")
        setattr(state, STATE_KEY, signer)
    return signer


async def _caller(request: Request) -> Any:
    """The request's principal: the one found already, else its credentials' (or ``None``)."""
    scope = request.scope
    principal = scope.get(SCOPE_KEY)
    if principal is None:
        principal = (scope.get("state") or {}).get("principal")
    if principal is not None or not any(n in _CREDENTIALS for n, _ in scope["headers"]):
        return principal
    try:
        authenticator = authenticator_of(request)
    except RuntimeError:
        return None  # no authenticator in this app: nobody is authenticated
    headers = scope["headers"]
    # bad credentials answer 401 here, as optional_principal and require would: a
    # client whose token expired keeps its cursor, refreshes and asks again
    principal = authenticator.cached(headers) or await authenticator.authenticate(headers)
    scope[SCOPE_KEY] = principal  # as AuthMiddleware does: require does not verify again
    scope.setdefault("state", {})["principal"] = principal
    return principal


def _context(request: Request, principal: Any) -> bytes:
    route = request.scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    caller = None
    if principal is not None:
        caller = [
            str(getattr(principal, "kind", "")),
            str(getattr(principal, "subject", principal)),
            getattr(principal, "tenant", None),
        ]
    sort = request.query_params.getlist("sort")
    return orjson.dumps([template or request.scope["path"], sort, caller])


async def page_params(
    request: Request,
    limit: Annotated[
        CanonicalInt, Query(ge=1, le=MAX_LIMIT, description="page size, in plain digits")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="next_cursor of the previous page"),
    ] = None,
) -> PageParams:
    """FastAPI dependency: ``?limit=&cursor=`` validated into :class:`PageParams`.

    The cursor is opened for this request's route, ``sort`` and caller,
    and the returned parameters seal the next page's cursor for the same.

    ``limit`` is plain digits (``5_0``, ``050`` or ``+50`` are a 422), and
    ``limit`` or ``cursor`` given twice is a 400 naming it, never "the
    last one wins".

    Raises (from the dependency):
        BadRequest: ``limit`` or ``cursor`` given twice; ``invalid-cursor``:
            the cursor is not one this listing made for this caller with
            this sort, or was changed.
        ProblemError: the request's credentials are rejected (401, as
            ``require`` would answer).
    """
    for name in _ONCE:
        if len(request.query_params.getlist(name)) > 1:
            raise BadRequest(f"{name} is given twice; give it once", parameter=name)
    binding = CursorBinding(_signer_of(request), _context(request, await _caller(request)))
    return PageParams(limit=limit, cursor=binding.open(cursor) if cursor else None, binding=binding)
