"""Strict parsing of JWS compact serialisation, before any cryptography.

A token is refused here, cheaply and without touching a key, unless it is
exactly ``header.payload.signature`` where:

* the whole token is ASCII and at most ``max_bytes`` long;
* each segment is non-empty, canonical base64url without padding (the
  alphabet ``A-Z a-z 0-9 - _``, no ``=``, no whitespace, unused bits zero);
* the header is a UTF-8 JSON object without duplicate members, ``NaN`` or
  ``Infinity``, of at most 1 KiB;
* ``alg`` is one of the allowed algorithms, compared exactly: ``none`` in
  any spelling is refused by name (RFC 8725 sections 2.1 and 3.1);
* there is no ``jku``, ``x5u``, ``jwk`` or ``x5c`` (keys come from our own
  configuration, never from the token), no ``crit`` (we implement no
  extension, so any critical one is unknown), no ``b64`` and no ``cty``
  (nested tokens are not accepted);
* ``kid``, when present, is 1 to 128 characters of ``A-Z a-z 0-9 . _ : = + -``
  (no ``/``, quotes, spaces or control characters);
* ``typ``, when one is required, matches (RFC 8725 section 3.11).

The payload is decoded only after the signature verified, by
:func:`parse_claims`.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lms_shared.auth._errors import InvalidToken
from lms_shared.caching import BoundedCache
from lms_shared.jsonlimits import DEFAULT_MAX_DEPTH, scan_depth

__all__ = ["Compact", "Header", "parse_claims", "parse_compact", "parse_header", "strict_json"]

MAX_HEADER_CHARS = 1400  # base64url of 1 KiB of JSON
MAX_CACHED_HEADERS = 64  # the bound of the verifier's cache of header segments
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_KID = re.compile(r"[A-Za-z0-9._:=+\-]{1,128}")
_FORBIDDEN = ("jku", "x5u", "jwk", "x5c", "crit", "b64", "cty")


@dataclass(frozen=True, slots=True)
class Compact:
    """A token whose header passed every check.

    Attributes:
        alg: the ``alg`` header, one of the allowed algorithms.
        kid: the ``kid`` header, or ``None``.
        header: the whole header object.
        signing_input: ``header.payload`` as bytes, what the signature covers.
        payload: the payload segment, still encoded.
        signature: the decoded signature.
    """

    alg: str
    kid: str | None
    header: Mapping[str, Any]
    signing_input: bytes
    payload: str
    signature: bytes


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate object member")
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
_STANDARD = bytes.maketrans(b"-_", b"+/")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_UNUSED_BITS = {ch: i for i, ch in enumerate(_ALPHABET)}
_PADDING = (b"", b"", b"==", b"=")


def strict_json(raw: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Decode UTF-8 JSON, refusing duplicate object members, NaN and Infinity.

    Raises:
        ValueError: the bytes are not such JSON, or nest deeper than
            ``max_depth`` (checked before decoding: the decoder recurses).
    """
    scan_depth(raw, max_depth)
    text = raw.decode("utf-8")  # json.loads would also guess UTF-16/32 from bytes
    return _DECODER.decode(text)


def b64url_decode(segment: str, what: str) -> bytes:
    """Decode one canonical, unpadded base64url segment.

    Raises:
        InvalidToken: the segment is empty, padded, outside the alphabet or
            not canonical (unused trailing bits set).
    """
    rest = len(segment) % 4
    if not segment or rest == 1 or _B64URL.fullmatch(segment) is None:
        raise InvalidToken(f"the token's {what} is not base64url")
    # the last character of a partial group carries 4 (or 2) bits that must be zero
    if rest and _UNUSED_BITS[segment[-1]] & (0x0F if rest == 2 else 0x03):
        raise InvalidToken(f"the token's {what} is not canonical base64url")
    try:
        data = segment.encode("ascii").translate(_STANDARD) + _PADDING[rest]
        return binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error:  # defensive: the checks above should leave nothing to fail
        raise InvalidToken(f"the token's {what} is not base64url") from None


def _typ_matches(typ: object, required: str) -> bool:
    if not isinstance(typ, str):
        return False
    typ = typ.lower()
    required = required.lower()
    return typ in (required, "application/" + required)


Header = tuple[str, str | None, Mapping[str, Any]]


def parse_header(head: str, *, algorithms: Collection[str], typ: str | None) -> Header:
    """Check one header segment: ``(alg, kid, header)``.

    Raises:
        InvalidToken: the header breaks a rule of the module docstring.
    """
    if len(head) > MAX_HEADER_CHARS:
        raise InvalidToken("the token's header is too large")
    try:
        header = strict_json(b64url_decode(head, "header"))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("the token's header is not a JSON object") from None
    if not isinstance(header, dict):
        raise InvalidToken("the token's header is not a JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise InvalidToken("the token's header has no algorithm")
    if alg.strip().lower() == "none":
        raise InvalidToken("unsigned tokens (alg none) are refused")
    if alg not in algorithms:
        raise InvalidToken(f"the algorithm {alg[:16]!r} is not accepted")
    for name in _FORBIDDEN:
        if name in header:
            raise InvalidToken(f"the token header {name!r} is not accepted")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or _KID.fullmatch(kid) is None):
        raise InvalidToken("the token's key id is malformed")
    if typ is not None and not _typ_matches(header.get("typ"), typ):
        raise InvalidToken(f"the token's type is not {typ}")
    return alg, kid, MappingProxyType(header)


def parse_compact(
    token: str,
    *,
    algorithms: Collection[str],
    max_bytes: int,
    typ: str | None = None,
    headers: BoundedCache[str, Header] | None = None,
) -> Compact:
    """Split and check a compact JWS, decoding only the header and signature.

    Args:
        token: the token as presented (without ``Bearer``).
        algorithms: the allowed ``alg`` values, compared exactly.
        max_bytes: the largest token accepted.
        typ: the required ``typ`` (``at+jwt``), or ``None`` to accept any.
        headers: a cache of header segments that passed (for these same
            ``algorithms`` and ``typ``): tokens of one issuer share a header.

    Raises:
        InvalidToken: any check above failed; the detail names which.
    """
    if len(token) > max_bytes:
        raise InvalidToken(f"the token is longer than {max_bytes} bytes")
    if not token.isascii():
        raise InvalidToken("the token is not ASCII")
    parts = token.split(".")
    if len(parts) == 5:
        raise InvalidToken("encrypted tokens (JWE) are not accepted")
    if len(parts) != 3:
        raise InvalidToken("the token is not three dot-separated segments")
    head, payload, sig = parts
    if not payload:
        raise InvalidToken("the token's payload is empty")
    if not sig:
        raise InvalidToken("the token is not signed")
    parsed = headers.get(head) if headers is not None else None
    if parsed is None:
        parsed = parse_header(head, algorithms=algorithms, typ=typ)
        if headers is not None:
            headers.set(head, parsed)
    alg, kid, header = parsed
    signature = b64url_decode(sig, "signature")
    return Compact(alg, kid, header, f"{head}.{payload}".encode("ascii"), payload, signature)


def parse_claims(compact: Compact) -> dict[str, Any]:
    """Decode the payload of a token whose signature verified.

    Raises:
        InvalidToken: the payload is not a strict JSON object.
    """
    try:
        claims = strict_json(b64url_decode(compact.payload, "payload"))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("the token's payload is not a JSON object") from None
    if not isinstance(claims, dict):
        raise InvalidToken("the token's payload is not a JSON object")
    return claims
