"""Reusable annotated types: the vocabulary every DTO of the platform is written in.

Each type carries its own bounds, so it documents itself in JSON Schema and
OpenAPI, and every string has a maximum length::

    class CourseCreate(LmsModel, schema_name="lms.course.create"):
        slug: Slug
        title: Title
        language: LocaleCode = "en"
        website: WebUrl | None = None

Datetimes are :data:`UtcDatetime`: timezone-aware on input (a naive value
is a validation error, type ``timezone_aware``), normalised to UTC, and
written as RFC 3339 with ``Z`` (``2026-03-01T09:30:00Z``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import (
    AfterValidator,
    EmailStr,
    Field,
    StringConstraints,
    UrlConstraints,
    ValidationInfo,
)
from pydantic import AnyUrl as _AnyUrl
from pydantic_core import PydanticCustomError

__all__ = [
    "NAIVE_IS_UTC",
    "Email",
    "LocaleCode",
    "LongText",
    "Name",
    "NonEmptyStr",
    "Percentage",
    "Score",
    "ShortText",
    "Slug",
    "Text",
    "Title",
    "UtcDatetime",
    "WebUrl",
    "trimmed",
    "url_constraints",
]

NAIVE_IS_UTC: Final = "lms_naive_is_utc"
"""Validation-context key: treat naive datetimes as UTC (values read from a database)."""

DEFAULT_MAX_LENGTH: Final = 10_000
"""Longest string any model accepts unless the field allows more (``max_length=``)."""

DEFAULT_MAX_ITEMS: Final = 1_000
"""Largest list/set/dict any model accepts unless the field says otherwise."""

# no C0/C1 control characters in one-line text (tabs and newlines included)
_ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f]*$"
# multi-line text: tab, LF and CR are fine, other control characters are not
_MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def _to_utc(value: datetime, info: ValidationInfo) -> datetime:
    """Reject naive datetimes (unless the context says they are UTC); convert to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        if info.context and info.context.get(NAIVE_IS_UTC):
            return value.replace(tzinfo=UTC)
        raise PydanticCustomError("timezone_aware", "Input should have timezone info")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        raise PydanticCustomError(
            "datetime_out_of_range", "Datetime is out of range once converted to UTC"
        ) from None


_UTC_VALIDATOR: Final = AfterValidator(_to_utc)

UtcDatetime = Annotated[datetime, _UTC_VALIDATOR]
"""A timezone-aware datetime, normalised to UTC, written as RFC 3339 with ``Z``."""


def trimmed(*, min_length: int = 1, max_length: int, multiline: bool = False) -> StringConstraints:
    """String constraints for trimmed text without control characters.

    Use it to make a text type of another length:
    ``Annotated[str, trimmed(max_length=80)]``.

    Args:
        min_length: shortest length after trimming (``1``: not blank).
        max_length: longest length after trimming.
        multiline: allow tabs and line breaks.
    """
    return StringConstraints(
        strip_whitespace=True,
        min_length=min_length,
        max_length=max_length,
        pattern=_MULTI_LINE if multiline else _ONE_LINE,
    )


NonEmptyStr = Annotated[str, trimmed(max_length=DEFAULT_MAX_LENGTH)]
"""Trimmed, not blank, one line, at most 10,000 characters."""
Name = Annotated[str, trimmed(max_length=100)]
"""A person's or an organisation's name part: trimmed, one line, 1-100 characters."""
Title = Annotated[str, trimmed(max_length=200)]
"""A title: trimmed, one line, 1-200 characters."""
ShortText = Annotated[str, trimmed(max_length=2_000, multiline=True)]
"""A summary or a comment: trimmed, 1-2,000 characters, line breaks allowed."""
Text = Annotated[str, trimmed(max_length=DEFAULT_MAX_LENGTH, multiline=True)]
"""Free text: trimmed, 1-10,000 characters, line breaks allowed."""
LongText = Annotated[str, trimmed(max_length=200_000, multiline=True)]
"""Lesson content, submissions: trimmed, 1-200,000 characters, line breaks allowed."""

Slug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$"),
    Field(examples=["intro-to-statistics"]),
]
"""Lower-case letters and digits in dash-separated words, 1-64 characters."""

LocaleCode = Annotated[
    str,
    StringConstraints(
        min_length=2,
        max_length=16,
        pattern=r"^[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|[0-9]{3}))?$",
    ),
    Field(examples=["en", "pt-BR", "zh-Hant-TW"]),
]
"""A BCP 47 language tag: language, optional script and region (``en``, ``pt-BR``)."""

Email = Annotated[EmailStr, Field(max_length=254, examples=["ada@example.org"])]
"""An e-mail address (syntax checked, no DNS look-up), at most 254 characters."""

Percentage = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False, examples=[87.5])]
"""A finite number from 0 to 100."""

Score = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False, examples=[42.0])]
"""Points: a finite number from 0 to 1,000,000."""


def url_constraints(*schemes: str, max_length: int = 2048) -> UrlConstraints:
    """URL constraints allowing only ``schemes``, with a host, at most ``max_length`` long.

    Use it to make another URL type:
    ``Annotated[AnyUrl, url_constraints("https", "s3")]``.

    Raises:
        ValueError: no scheme given.
    """
    if not schemes:
        raise ValueError("name at least one allowed URL scheme")
    return UrlConstraints(allowed_schemes=list(schemes), max_length=max_length, host_required=True)


WebUrl = Annotated[_AnyUrl, url_constraints("https"), Field(examples=["https://example.org/"])]
"""An ``https`` URL with a host, at most 2,048 characters (``http`` is refused)."""
