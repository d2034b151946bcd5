"""Filtering and sorting from request parameters, by allowlist.

A :class:`QuerySpec` names, per model, which fields may be filtered with
which operators and which fields may be sorted on. It turns query
parameters into a :class:`~lms_shared.db.ListQuery`::

    ?status=published&title[contains]=rust&created_at[gte]=2026-01-01T00:00:00Z
    &tags[in]=a,b&archived_at[null]=true&sort=-created_at,title

``field=value`` means ``eq``; ``field[op]=value`` names the operator:
``eq ne lt lte gt gte in contains icontains prefix null``. Values are
validated against the column's Python type in its one canonical spelling
(:func:`lms_shared.models.canonical_type`: lower-case UUIDs with dashes,
plain-digit integers, ``true``/``false``, RFC 3339 instants with an
offset) and always bound as parameters; ``contains``/``prefix`` escape
``%`` and ``_``. An unknown field or operator, or a value that does not
fit, is a 400 ``invalid-filter`` problem naming the parameter; an unknown
sort field a 400 ``invalid-sort``.

A parameter appears once: ``role=admin&role=student`` is a 400 naming
``role`` (its "any of" is ``role[in]=admin,student``), and so is a second
``sort``, ``limit`` or ``cursor``. Nothing is taken "last wins" or ANDed
by accident.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, String
from sqlalchemy import inspect as sa_inspect

from lms_shared.db._errors import InvalidFilter, InvalidSort
from lms_shared.db._listing import Condition, FieldInfo, ListQuery, SortKey
from lms_shared.errors import BadRequest
from lms_shared.models._canonical import canonical_type

__all__ = ["OPERATORS", "QuerySpec"]

M = TypeVar("M")
Builder = Callable[[Any, Any], ColumnElement[bool]]

OPERATORS: dict[str, Builder] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "in": lambda column, values: column.in_(values),
    "contains": lambda column, value: column.contains(value, autoescape=True),
    "icontains": lambda column, value: column.icontains(value, autoescape=True),
    "prefix": lambda column, value: column.startswith(value, autoescape=True),
    "null": lambda column, value: column.is_(None) if value else column.is_not(None),
}
_TEXT_ONLY = frozenset({"contains", "icontains", "prefix"})
_BOOL = TypeAdapter(canonical_type(bool))
MAX_VALUE_LENGTH = 1000
MAX_IN_VALUES = 100


class QuerySpec(Generic[M]):
    """What a list endpoint lets clients filter and sort on.

    Args:
        model: the mapped class.
        filters: field name -> allowed operators.
        sorts: fields clients may sort on (NOT NULL columns only).
        default_sort: the order without ``?sort=`` (``"-created_at"``);
            the primary key always ends it as a tiebreaker.
        reserved: parameters that are not filters (paging, sort, others
            the endpoint reads itself).

    Raises:
        ValueError: a field is not a column of the model, an operator is
            unknown or does not fit the column, or a sort field is nullable.
    """

    def __init__(
        self,
        model: type[M],
        *,
        filters: Mapping[str, Iterable[str]] | None = None,
        sorts: Iterable[str] = (),
        default_sort: str = "",
        reserved: Iterable[str] = ("limit", "cursor", "sort"),
    ) -> None:
        self.model = model
        mapper = sa_inspect(model)
        self._columns = {attr.key: attr for attr in mapper.column_attrs}
        self.filters: dict[str, frozenset[str]] = {}
        self._fields: dict[str, FieldInfo] = {}
        for name, ops in (filters or {}).items():
            allowed = frozenset(ops)
            unknown = allowed - OPERATORS.keys()
            if unknown:
                raise ValueError(f"unknown operators for {name!r}: {sorted(unknown)}")
            info = self._field(name)
            if allowed & _TEXT_ONLY and not info.text:
                raise ValueError(f"{name!r} is not text: {sorted(allowed & _TEXT_ONLY)} need text")
            self.filters[name] = allowed
        self.sorts = tuple(sorts)
        for name in self.sorts:
            self._sortable(name)
        self._tiebreak = tuple(
            SortKey(self._field(self._key_of(column))) for column in mapper.primary_key
        )
        try:
            self.default_sort = self._parse_sort(default_sort) if default_sort else ()
        except InvalidSort as exc:
            raise ValueError(f"default_sort: {exc.detail}") from None
        self.reserved = frozenset(reserved)

    def _key_of(self, column: Any) -> str:
        for key, attr in self._columns.items():
            if column in attr.columns:
                return str(key)
        raise ValueError(f"the primary key column {column} is not mapped")

    def _field(self, name: str) -> FieldInfo:
        if name in self._fields:
            return self._fields[name]
        attr = self._columns.get(name)
        if attr is None:
            raise ValueError(f"{self.model.__name__} has no column attribute {name!r}")
        column = attr.columns[0]
        try:
            python_type: Any = column.type.python_type
        except NotImplementedError:
            python_type = str
        if python_type is object:
            python_type = str
        info = FieldInfo(
            name=name,
            expression=getattr(self.model, name),
            # one spelling per value (datetimes aware): "5_0", "050" or an upper-case id are refused
            adapter=TypeAdapter(canonical_type(python_type)),
            text=isinstance(column.type, String),
        )
        self._fields[name] = info
        return info

    def _sortable(self, name: str) -> FieldInfo:
        info = self._field(name)
        if self._columns[name].columns[0].nullable:
            raise ValueError(f"{name!r} is nullable: keyset paging needs NOT NULL sort fields")
        return info

    def parse(self, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> ListQuery[M]:
        """Validate request parameters into a :class:`ListQuery`.

        Args:
            params: ``request.query_params.multi_items()`` (or a mapping).

        Raises:
            InvalidFilter: an unknown field or operator, a bad value, or a
                filter given twice.
            InvalidSort: an unknown or repeated sort field, or ``sort`` twice.
            BadRequest: another parameter (``limit``, ``cursor``) given twice.
        """
        items = list(params.items() if isinstance(params, Mapping) else params)
        _once(items, self.reserved)
        conditions: list[Condition] = []
        sort: tuple[SortKey, ...] | None = None
        for key, raw in items:
            if key == "sort":
                sort = self._parse_sort(raw)
            elif key not in self.reserved:
                conditions.append(self._condition(key, raw))
        keys = sort if sort is not None else self.default_sort
        names = {k.field.name for k in keys}
        keys += tuple(k for k in self._tiebreak if k.field.name not in names)
        return ListQuery(conditions=tuple(conditions), sort=keys)

    def _condition(self, key: str, raw: str) -> Condition:
        name, op = key, "eq"
        if key.endswith("]") and "[" in key:
            name, _, rest = key.partition("[")
            op = rest[:-1]
        allowed = self.filters.get(name)
        if allowed is None:
            listed = ", ".join(sorted(self.filters)) or "none"
            raise InvalidFilter(
                f"cannot filter on {name!r}; filterable fields: {listed}", parameter=key
            )
        if op not in allowed:
            listed = ", ".join(sorted(allowed))
            raise InvalidFilter(
                f"{key}: operator {op!r} is not allowed on {name!r}; allowed: {listed}",
                parameter=key,
            )
        info = self._fields[name]
        value: Any
        if op == "null":
            value = self._validate(_BOOL, raw, key)
        elif op == "in":
            parts = raw.split(",")
            if len(parts) > MAX_IN_VALUES:
                raise InvalidFilter(f"{key}: at most {MAX_IN_VALUES} values", parameter=key)
            value = [self._validate(info.adapter, part, key) for part in parts]
        else:
            value = self._validate(info.adapter, raw, key)
        return Condition(name, op, value, OPERATORS[op](info.expression, value))

    @staticmethod
    def _validate(adapter: TypeAdapter[Any], raw: str, key: str) -> Any:
        if len(raw) > MAX_VALUE_LENGTH:
            raise InvalidFilter(f"{key}: longer than {MAX_VALUE_LENGTH} characters", parameter=key)
        if "\x00" in raw:
            raise InvalidFilter(f"{key}: NUL characters are not allowed", parameter=key)
        try:
            raw.encode("utf-8")
            return adapter.validate_strings(raw)
        except UnicodeEncodeError:
            raise InvalidFilter(f"{key}: not valid text", parameter=key) from None
        except ValidationError as exc:
            reason = exc.errors(include_url=False)[0]["msg"]
            raise InvalidFilter(f"{key}: {reason}", parameter=key) from None

    def _parse_sort(self, raw: str) -> tuple[SortKey, ...]:
        keys: list[SortKey] = []
        seen: set[str] = set()
        for token in raw.split(","):  # no spaces: "-name, title" is refused, not trimmed
            descending = token.startswith("-")
            name = token[1:] if token[:1] in ("-", "+") else token
            if name not in self.sorts:
                listed = ", ".join(self.sorts) or "none"
                raise InvalidSort(f"cannot sort on {name!r}; sortable fields: {listed}", field=name)
            if name in seen:
                raise InvalidSort(f"{name!r} appears twice in the sort", field=name)
            seen.add(name)
            keys.append(SortKey(self._fields[name], descending))
        return tuple(keys)


def _once(items: list[tuple[str, str]], reserved: frozenset[str]) -> None:
    """Refuse a parameter given twice (400 naming it) instead of picking one."""
    seen: set[str] = set()
    for key, _ in items:
        if key in seen:
            raise _repeated(key, reserved)
        seen.add(key)


def _repeated(key: str, reserved: frozenset[str]) -> BadRequest:
    if key == "sort":
        return InvalidSort(
            "sort is given twice; give one sort, its fields separated by commas", field="sort"
        )
    if key in reserved:
        return BadRequest(f"{key} is given twice; give it once", parameter=key)
    name = key.partition("[")[0]
    hint = f"; for any of several values use {name}[in]=a,b" if key == name else ""
    return InvalidFilter(f"{key} is given twice{hint}", parameter=key)
