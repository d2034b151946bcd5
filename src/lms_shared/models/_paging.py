"""Cursor pagination as data: opaque cursors, paging parameters, in-memory paging.

Cursors are opaque to clients: URL-safe base64 of a small JSON object the
server wrote (keyset position, never an offset). Over HTTP a cursor is
also *sealed* (:class:`CursorSigner`): an HMAC-SHA256 tag, under a key
derived from the service's ``LMS_SECRET_KEY``, over the position and the
context it was made for (route, sort and caller), so a cursor only pages
the listing that made it, for the caller it was given to. A cursor a
client made up, edited, truncated or carried to another route, sort or
caller is a 400 ``invalid-cursor`` problem. The HTTP part (the
:class:`~lms_shared.http.Page` envelope and the ``?limit=&cursor=``
dependency, which binds the context) is :mod:`lms_shared.http.paging`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from lms_shared import errors
from lms_shared.errors import BadRequest
from lms_shared.jsonlimits import load_json

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_CURSOR_LENGTH",
    "MAX_LIMIT",
    "CursorBinding",
    "CursorSigner",
    "PageParams",
    "decode_cursor",
    "encode_cursor",
    "paginate",
]

T = TypeVar("T")
MAX_CURSOR_LENGTH = 1024
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_CURSOR_DEPTH = 4  # a keyset position: an object of scalars (or short lists)
_TAG_BYTES = 16  # HMAC-SHA256 truncated to 128 bits (RFC 2104 section 5)
_KEY_LABEL = b"lms-shared cursor v1"


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
        value = load_json(raw, max_bytes=MAX_CURSOR_LENGTH, max_depth=_CURSOR_DEPTH)
    except (binascii.Error, ValueError):
        raise BadRequest(
            "the cursor is malformed; use next_cursor from a previous page",
            code=errors.INVALID_CURSOR,
        ) from None
    if not isinstance(value, dict):
        raise BadRequest("the cursor is malformed", code=errors.INVALID_CURSOR)
    return value


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _bad(detail: str) -> BadRequest:
    return BadRequest(detail, code=errors.INVALID_CURSOR)


class CursorSigner:
    """Seals keyset positions into cursors bound to a context, and opens them.

    A sealed cursor is ``<position>.<tag>``: the position as
    :func:`encode_cursor` writes it, and an HMAC-SHA256 tag (128 bits) over
    the context and the position. Only a cursor this signer sealed for the
    same context opens; the tag is checked before the position is parsed.

    Args:
        key: the MAC key, at least 32 bytes (use :meth:`from_secret`).

    Raises:
        ValueError: the key is shorter than 32 bytes.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a cursor key is at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "CursorSigner(<key>)"

    @classmethod
    def from_secret(cls, secret: str | bytes | None, *, service: str) -> CursorSigner:
        """A signer whose key is derived from the service's secret (``LMS_SECRET_KEY``).

        The key is ``HMAC-SHA256(secret, label || service)``: one secret
        serves several purposes, and two services sharing a secret do not
        accept each other's cursors. Without a secret the key is random,
        so cursors last as long as the process (set ``LMS_SECRET_KEY`` when
        several instances serve one listing).
        """
        if secret is None or not secret:
            return cls(os.urandom(32))
        raw = secret.encode() if isinstance(secret, str) else secret
        return cls(hmac.new(raw, _KEY_LABEL + b"\0" + service.encode(), hashlib.sha256).digest())

    def _tag(self, context: bytes, payload: bytes) -> bytes:
        message = len(context).to_bytes(4, "big") + context + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_TAG_BYTES]

    def seal(self, position: dict[str, Any], context: bytes) -> str:
        """The cursor of ``position``, valid only for ``context``."""
        payload = encode_cursor(position)
        return f"{payload}.{_b64(self._tag(context, payload.encode()))}"

    def open(self, cursor: str, context: bytes) -> dict[str, Any]:
        """The position of a cursor sealed for ``context``.

        Raises:
            BadRequest: ``invalid-cursor`` when the cursor is too long, not
                sealed (an old unsigned one), sealed for another context
                (route, sort, caller, service) or edited, or malformed.
        """
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise _bad("the cursor is too long")
        payload, dot, tag = cursor.rpartition(".")
        if not dot or not payload:
            raise _bad("the cursor is not one this listing made; start from the first page")
        try:
            given = base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4))
        except (binascii.Error, ValueError):
            given = b""
        if not hmac.compare_digest(given, self._tag(context, payload.encode("ascii", "replace"))):
            raise _bad(
                "the cursor belongs to another listing, sort or caller, or was changed; "
                "start from the first page"
            )
        return decode_cursor(payload)


@dataclass(frozen=True, slots=True)
class CursorBinding:
    """A signer and the context of one request: what its cursors are bound to.

    Attributes:
        signer: the service's :class:`CursorSigner`.
        context: the request's route, sort and caller, as bytes
            (``lms_shared.http.paging`` builds it).
    """

    signer: CursorSigner
    context: bytes

    def seal(self, position: dict[str, Any]) -> str:
        """The cursor of ``position`` for this context."""
        return self.signer.seal(position, self.context)

    def open(self, cursor: str) -> dict[str, Any]:
        """The position of a cursor made for this context.

        Raises:
            BadRequest: ``invalid-cursor``.
        """
        return self.signer.open(cursor, self.context)


@dataclass(frozen=True, slots=True)
class PageParams:
    """Validated paging parameters of a request.

    Attributes:
        limit: page size.
        cursor: the decoded keyset position, ``None`` for the first page.
        binding: how the next cursor is sealed (set by ``page_params``);
            ``None`` writes plain, unsigned cursors (in-process use).
    """

    limit: int = DEFAULT_LIMIT
    cursor: dict[str, Any] | None = None
    binding: CursorBinding | None = None

    def cursor_after(self, position: dict[str, Any]) -> str:
        """The cursor of the next page, which starts after ``position``.

        Sealed for this request's route, sort and caller when the
        parameters came from ``page_params``; plain otherwise.
        """
        if self.binding is None:
            return encode_cursor(position)
        return self.binding.seal(position)


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
    return page, (params.cursor_after({"after": key(page[-1])}) if more and page else None)
