"""One collection envelope and opaque cursor pagination.

Every list endpoint answers with :class:`Page`::

    {"items": [...], "next_cursor": "eyJhZnRlciI6...", "links": {"self": ..., "next": ...}}

Cursors are opaque to clients: URL-safe base64 of a small JSON object the
server wrote (keyset position, never an offset). A cursor a client made up
or truncated gets a 400 ``invalid-cursor`` problem.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, Field

from lms_shared import errors
from lms_shared.errors import BadRequest

__all__ = [
    "MAX_CURSOR_LENGTH",
    "Page",
    "PageLinks",
    "PageParams",
    "decode_cursor",
    "encode_cursor",
    "page_params",
    "paginate",
]

T = TypeVar("T")
MAX_CURSOR_LENGTH = 1024
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(position: dict[str, Any]) -> str:
    """Encode a keyset position as an opaque cursor string."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> dict[str, Any]:
    """Decode a cursor made by :func:`encode_cursor`.

    Raises:
        BadRequest: ``invalid-cursor`` when the cursor is too long, not
            base64, not JSON or not an object.
    """
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadRequest("the cursor is too long", code=errors.INVALID_CURSOR)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadRequest(
            "the cursor is malformed; use next_cursor from a previous page",
            code=errors.INVALID_CURSOR,
        ) from None
    if not isinstance(value, dict):
        raise BadRequest("the cursor is malformed", code=errors.INVALID_CURSOR)
    return value


class PageLinks(BaseModel):
    """Links of a page (absolute URLs)."""

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
                        "self": "http://127.0.0.1:8002/v1/courses?limit=20",
                        "next": "http://127.0.0.1:8002/v1/courses?limit=20&cursor=eyJhZnRlciI6IDQyfQ",
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
        """A page whose links are derived from the current request's URL."""
        self_url = str(request.url)
        next_url = (
            str(request.url.include_query_params(cursor=next_cursor)) if next_cursor else None
        )
        return cls(
            items=list(items),
            next_cursor=next_cursor,
            links=PageLinks(self=self_url, next=next_url),
        )


@dataclass(frozen=True, slots=True)
class PageParams:
    """Validated paging parameters of a request.

    Attributes:
        limit: page size.
        cursor: the decoded keyset position, ``None`` for the first page.
    """

    limit: int = DEFAULT_LIMIT
    cursor: dict[str, Any] | None = None


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="next_cursor of the previous page"),
    ] = None,
) -> PageParams:
    """FastAPI dependency: ``?limit=&cursor=`` validated into :class:`PageParams`."""
    return PageParams(limit=limit, cursor=decode_cursor(cursor) if cursor else None)


def paginate(
    items: Sequence[T], params: PageParams, key: Callable[[T], str | int]
) -> tuple[list[T], str | None]:
    """Keyset-paginate an in-memory sequence by a unique, sortable key.

    Returns:
        The page's items and the cursor of the next page (``None`` at the end).

    Raises:
        BadRequest: ``invalid-cursor`` when the cursor has no ``after`` key.
    """
    ordered = sorted(items, key=key)
    if params.cursor is not None:
        if "after" not in params.cursor:
            raise BadRequest("the cursor is malformed", code=errors.INVALID_CURSOR)
        after = params.cursor["after"]
        try:
            ordered = [item for item in ordered if key(item) > after]
        except TypeError:
            raise BadRequest("the cursor is malformed", code=errors.INVALID_CURSOR) from None
    page = ordered[: params.limit]
    more = len(ordered) > params.limit
    return page, (encode_cursor({"after": key(page[-1])}) if more and page else None)
