"""Validation helpers: cross-field rules and typed validation errors.

Cross-field rules are reusable pydantic validators. Each is attached to the
*later* field, so its error points at that field (``#/ends_on``) and the
earlier field must be declared first::

    class CourseCreate(LmsModel):
        starts_on: date | None = None
        ends_on: date | None = None
        _dates = not_before("starts_on", "ends_on")

        score: Score
        max_score: Score
        _score = at_most("score", "max_score")   # declared after both fields

:func:`validate` and :func:`validate_json` validate data in service code and
raise :class:`~lms_shared.models.ModelValidationError` (a 422 problem with
one ``errors`` entry per field) instead of pydantic's ``ValidationError``,
which would otherwise surface as a 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from lms_shared.models._errors import ModelValidationError

__all__ = [
    "at_most",
    "json_pointer",
    "not_before",
    "problem_from",
    "validate",
    "validate_json",
    "validation_errors",
]

M = TypeVar("M", bound=BaseModel)


def not_before(earlier: str, later: str, *, allow_equal: bool = True) -> Any:
    """A validator: ``later`` must not be before ``earlier`` (dates, datetimes, numbers).

    Assign the result to a private class attribute. Either value may be
    ``None`` (then nothing is checked).

    Args:
        earlier: the field that comes first (declared before ``later``).
        later: the field that is checked; errors point at it.
        allow_equal: whether both may be equal.
    """

    def check(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
        start = info.data.get(earlier)
        if value is None or start is None:
            return value
        if value < start or (value == start and not allow_equal):
            relation = "before" if allow_equal else "at or before"
            raise PydanticCustomError(
                "range_order",
                "{later} must not be {relation} {earlier}",
                {"later": later, "earlier": earlier, "relation": relation},
            )
        return value

    check.__name__ = f"_check_{later}_not_before_{earlier}"
    return field_validator(later)(check)


def at_most(field: str, limit: str) -> Any:
    """A validator: ``field`` must not exceed ``limit`` (``score <= max_score``).

    Runs when the later of the two fields is validated, and errors point at
    that field. A default value is not validated, so give the later field
    no default (or ``Field(validate_default=True)``).

    Args:
        field: the bounded field.
        limit: the field holding the bound.
    """

    def check(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
        if info.field_name == field:
            current, bound = value, info.data.get(limit)
        else:
            current, bound = info.data.get(field), value
        if current is not None and bound is not None and current > bound:
            raise PydanticCustomError(
                "above_limit",
                "{field} must be at most {limit} ({bound})",
                {"field": field, "limit": limit, "bound": bound},
            )
        return value

    check.__name__ = f"_check_{field}_at_most_{limit}"
    # runs on both fields; only the later one sees the other in info.data
    return field_validator(field, limit)(check)


def problem_from(exc: ValidationError, *, prefix: Sequence[str | int] = ()) -> ModelValidationError:
    """The 422 problem of a pydantic ``ValidationError``.

    Input values are never copied into the problem (they may be personal
    data); each entry has a JSON pointer, a message and the error type.

    Args:
        exc: the validation error.
        prefix: location of the validated data inside the request body
            (``("lessons", 3)`` makes ``#/lessons/3/title``).
    """
    items = [
        {**err, "loc": ("body", *prefix, *err["loc"])}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return ModelValidationError(validation_errors(items))


def validate(model: type[M], data: Any, *, context: dict[str, Any] | None = None) -> M:
    """Validate Python data into ``model``.

    Raises:
        ModelValidationError: the data is invalid (422, per-field errors).
    """
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise problem_from(exc) from None


def validate_json(model: type[M], data: str | bytes) -> M:
    """Validate JSON text into ``model`` (pydantic-core's fast path).

    Raises:
        ModelValidationError: the JSON is invalid or does not fit the model.
    """
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise problem_from(exc) from None


# what a URI fragment holds unescaped besides letters and digits (RFC 3986 §3.5)
_FRAGMENT_SAFE = "!$&'()*+,;=:@-._~?"


def json_pointer(parts: Sequence[str]) -> str:
    """The URI-fragment form of the RFC 6901 pointer to ``parts`` (``#/lessons/0/title``).

    The whole document is ``#``; ``~`` and ``/`` in a token become ``~0``
    and ``~1``, and characters a fragment cannot hold are percent-encoded
    (RFC 6901 §6).
    """
    if not parts:
        return "#"
    return "#/" + "/".join(
        quote(p.replace("~", "~0").replace("/", "~1"), safe=_FRAGMENT_SAFE) for p in parts
    )


def validation_errors(items: Sequence[Any]) -> list[dict[str, Any]]:
    """Turn pydantic/FastAPI error dicts into RFC 9457 ``errors`` entries.

    Body locations become JSON pointers (``#/lessons/0/title``); query,
    path, header and cookie locations become ``parameter`` names.
    """
    out: list[dict[str, Any]] = []
    for err in items:
        loc = [str(p) for p in err.get("loc", ())]
        entry: dict[str, Any] = {"detail": err.get("msg", "invalid"), "type": err.get("type")}
        if loc and loc[0] in {"query", "path", "header", "cookie"}:
            entry["parameter"] = ".".join(loc[1:]) or loc[0]
        else:
            parts = loc[1:] if loc and loc[0] == "body" else loc
            entry["pointer"] = json_pointer(parts)
        out.append(entry)
    return out
