"""Canonical text forms of ids, numbers, flags and instants, for request parameters.

One rule for every path and query parameter of the platform: a value has
one spelling, and any other is refused rather than guessed, so one
resource has one URL and a cache key, a cursor or a log line means one
thing. Python's and pydantic's lax parsing accepts much more; these
types do not:

=============  ======================================  =====================================
type           accepted                                refused (examples)
=============  ======================================  =====================================
:data:`Id`     ``3f2504e0-4f89-11d3-9a0c-0305e82c3301``  upper case, no dashes, ``{...}``,
                                                       ``urn:uuid:...``, spaces
integer        ``50``, ``0``, ``-3``                    ``5_0``, ``050``, ``+50``, `` 50``,
                                                       ``50.0``, ``1e3``, non-ASCII digits
boolean        ``true``, ``false``                      ``True``, ``1``, ``yes``, ``on``
number         ``42``, ``-0.5``                         ``1e3``, ``nan``, ``inf``, ``.5``
instant        ``2026-03-01T09:30:00Z``, ``...+02:00``  no offset, a date alone, ``1700000000``
date           ``2026-03-01``                           ``20260301``, ``2026-3-1``
=============  ======================================  =====================================

Only text is checked (query strings and paths are text); a value that is
already a ``UUID`` or an ``int`` (from a JSON body, say) is left to the
type's own validation.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import AwareDatetime, BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "INTEGER_PATTERN",
    "UUID_PATTERN",
    "CanonicalInt",
    "Id",
    "canonical_type",
]

UUID_PATTERN: Final = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
"""A canonical UUID: lower-case hex, 8-4-4-4-12 (RFC 9562 §4's output form)."""
INTEGER_PATTERN: Final = "^(0|-?[1-9][0-9]*)$"
"""A canonical integer: ASCII digits, no leading zero, ``+``, separator or space."""
_BOOLEAN = "^(true|false)$"
_NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"
_INSTANT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_DATE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _spelled(pattern: str, kind: str, expected: str) -> BeforeValidator:
    # \Z-anchored full match, ASCII only: "$" alone would let a trailing newline through
    compiled = re.compile(pattern.removeprefix("^").removesuffix("$"), re.ASCII)

    def check(value: Any) -> Any:
        if isinstance(value, str) and compiled.fullmatch(value) is None:
            raise PydanticCustomError(kind, "Input should be {expected}", {"expected": expected})
        return value

    return BeforeValidator(check)


Id = Annotated[
    UUID,
    _spelled(UUID_PATTERN, "uuid_not_canonical", "a valid UUID, lower case with dashes"),
    WithJsonSchema(
        {"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
        mode="validation",
    ),
]
"""A resource id: a UUID in its canonical spelling only (path and query parameters)."""

CanonicalInt = Annotated[
    int, _spelled(INTEGER_PATTERN, "int_not_canonical", "a valid integer in plain digits (50)")
]
"""An integer parameter in plain digits only (``50``; not ``5_0``, ``050`` or ``+50``)."""

_Flag = Annotated[bool, _spelled(_BOOLEAN, "bool_not_canonical", "a valid boolean: true or false")]
_Number = Annotated[
    float, _spelled(_NUMBER, "number_not_canonical", "a valid number in plain decimals (0.5)")
]
_Instant = Annotated[
    AwareDatetime,
    _spelled(
        _INSTANT,
        "datetime_not_canonical",
        "an RFC 3339 datetime with a timezone offset (2026-03-01T09:30:00Z)",
    ),
]
_Day = Annotated[date, _spelled(_DATE, "date_not_canonical", "a valid date, YYYY-MM-DD")]

_BY_TYPE: dict[Any, Any] = {
    UUID: Id,
    int: CanonicalInt,
    bool: _Flag,
    float: _Number,
    datetime: _Instant,
    date: _Day,
}


def canonical_type(python_type: Any) -> Any:
    """The canonical parameter type for ``python_type`` (itself when it has one spelling).

    ``canonical_type(UUID)`` is :data:`Id`, ``canonical_type(int)`` is
    :data:`CanonicalInt`; booleans, floats, datetimes (aware) and dates
    get theirs; strings and enums are returned as they are.
    """
    return _BY_TYPE.get(python_type, python_type)
