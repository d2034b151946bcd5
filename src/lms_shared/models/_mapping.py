"""Mapping between database rows and DTOs, without depending on a database layer.

:func:`from_row` reads a DTO from anything a query returns: an ORM instance
(attributes, relationships included), a SQLAlchemy ``Row`` or
``RowMapping``, or a plain dict. Naive datetimes in a row are read as UTC:
the platform stores UTC, and SQLite hands timestamps back without a zone.
:func:`to_values` goes the other way, to the dict that an ``insert()`` or
``update()`` statement takes::

    course = from_row(Course, await session.get(CourseRow, course_id))
    rows = (await conn.execute(select(courses))).all()
    page = from_rows(Course, rows, rename={"tenant_id": "organization_id"})
    await conn.execute(insert(courses).values(to_values(body, exclude={"modules"})))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import AnyUrl, BaseModel
from pydantic_core import Url

from lms_shared.models._types import NAIVE_IS_UTC

__all__ = ["from_row", "from_rows", "to_values"]

M = TypeVar("M", bound=BaseModel)

_CONTEXT = {NAIVE_IS_UTC: True}


def from_row(model: type[M], row: Any, *, rename: Mapping[str, str] | None = None) -> M:
    """A DTO from one database row, ORM instance or mapping.

    Args:
        model: the DTO class (an :class:`~lms_shared.models.LmsRecord`, or
            any model with ``from_attributes``).
        row: the row, object or mapping.
        rename: column or attribute name to field name
            (``{"tenant_id": "organization_id"}``).

    Raises:
        pydantic.ValidationError: the row does not fit the model. Stored data
            that is invalid is a server-side bug, so it is not a 4xx problem.
    """
    return model.model_validate(_source(model, row, rename), from_attributes=True, context=_CONTEXT)


def from_rows(
    model: type[M], rows: Iterable[Any], *, rename: Mapping[str, str] | None = None
) -> list[M]:
    """:func:`from_row` for each row, in order."""
    return [from_row(model, row, rename=rename) for row in rows]


def to_values(
    dto: BaseModel,
    *,
    exclude: Iterable[str] = (),
    exclude_unset: bool = False,
    rename: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The column values of ``dto`` for an ``insert()`` or ``update()``.

    UUIDs, dates and datetimes stay Python objects (the driver binds them);
    URLs become strings.

    Args:
        dto: the model.
        exclude: fields that are not columns (nested relationships).
        exclude_unset: only fields the client sent (an Update DTO as a PATCH).
        rename: field name to column name (``{"organization_id": "tenant_id"}``).
    """
    values = dto.model_dump(mode="python", exclude=set(exclude), exclude_unset=exclude_unset)
    out = {key: _plain(value) for key, value in values.items()}
    if rename:
        out = {rename.get(key, key): value for key, value in out.items()}
    return out


def _source(model: type[BaseModel], row: Any, rename: Mapping[str, str] | None) -> Any:
    mapping = getattr(row, "_mapping", None)  # sqlalchemy.engine.Row
    if isinstance(mapping, Mapping):
        row = mapping
    if isinstance(row, Mapping):
        data = dict(row)
        if rename:
            data = {rename.get(key, key): value for key, value in data.items()}
        return data
    if not rename:
        return row  # attribute access, relationships included
    by_field = {target: source for source, target in rename.items()}
    data = {}
    for name in model.model_fields:
        source = by_field.get(name, name)
        if hasattr(row, source):
            data[name] = getattr(row, source)
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, AnyUrl | Url):
        return str(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
