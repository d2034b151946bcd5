"""Bounded JSON decoding for untrusted input: a size cap and a nesting cap.

Every parser of input we do not control (bearer tokens, JWKS documents,
cursors, merge patches, stored bodies, problem bodies of other services,
event envelopes) goes through here, so a 10,000-level document is a clean
:class:`JsonLimitError` (a ``ValueError``) that the capability turns into
its own typed error, never a ``RecursionError`` and a 500.

Two decoders, both measured against the input they serve:

* :func:`load_json`: orjson (C, fast), then an iterative depth check of the
  result. orjson refuses more than 1,024 levels itself, so nothing recursive
  ever sees a deeper document.
* :func:`scan_depth`: a check of the raw text *before* a decoder that
  recurses in Python (``json`` with ``object_pairs_hook``, which auth needs
  to refuse duplicate members): one regular expression skips strings and
  finds brackets. Used for small inputs (tokens are at most 8 KiB).
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

__all__ = ["DEFAULT_MAX_DEPTH", "JsonLimitError", "check_depth", "load_json", "scan_depth"]

DEFAULT_MAX_DEPTH: Final = 32
"""Nesting levels allowed unless a parser says otherwise (arrays and objects)."""

# a JSON string (escapes included) or one bracket; strings are skipped whole
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


class JsonLimitError(ValueError):
    """The JSON is malformed, larger than allowed, or nested too deeply."""


def scan_depth(raw: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Refuse ``raw`` when its arrays and objects nest deeper than ``max_depth``.

    Raises:
        JsonLimitError: it nests deeper than ``max_depth``.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return  # cannot nest deeper than it has brackets
    depth = 0
    for match in _TOKENS.finditer(data):
        first = match.group()[0]
        if first in _OPEN:
            depth += 1
            if depth > max_depth:
                raise JsonLimitError(f"the JSON is nested deeper than {max_depth} levels")
        elif first != 0x22:  # a closing bracket (strings start with '"')
            depth -= 1


def check_depth(document: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Refuse a parsed document nested deeper than ``max_depth`` (iteratively).

    Raises:
        JsonLimitError: it nests deeper than ``max_depth``.
    """
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            raise JsonLimitError(f"the JSON is nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def load_json(
    data: bytes | str, *, max_bytes: int = 1 << 20, max_depth: int = DEFAULT_MAX_DEPTH
) -> Any:
    """Parse JSON no larger than ``max_bytes`` and no deeper than ``max_depth``.

    Raises:
        JsonLimitError: not bytes or text, too large, malformed, or too deep.
    """
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes | str):
        raise JsonLimitError("JSON must be bytes or text")
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise JsonLimitError(f"the JSON is larger than {max_bytes} bytes")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JsonLimitError(f"malformed JSON: {exc}") from None
    check_depth(document, max_depth)
    return document
