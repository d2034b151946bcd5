"""A validated list request applied to a select: filters, order, keyset page.

:class:`ListQuery` is what :meth:`QuerySpec.parse` returns. It only ever
adds bound parameters and allowlisted columns to the statement, so no
request value becomes SQL text. Pages are keyset pages: the cursor holds
the sort-key values of the last row (and the sort it belongs to), and the
next page starts strictly after them, so rows inserted meanwhile neither
repeat nor vanish, and deep pages cost the same as the first. Over HTTP
the cursor is sealed for its route, sort and caller by the
:class:`~lms_shared.models.PageParams` the ``page_params`` dependency made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from lms_shared import errors
from lms_shared.errors import BadRequest
from lms_shared.models._paging import PageParams, encode_cursor

__all__ = ["Condition", "FieldInfo", "ListQuery", "SortKey"]

M = TypeVar("M")
S = TypeVar("S", bound="Select[*tuple[Any, ...]]")


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """An allowlisted field of a model.

    Attributes:
        name: the attribute name, as in request parameters.
        expression: the ORM attribute (``Course.title``).
        adapter: validates request strings and cursor values for it.
        text: the column holds text (``contains``/``prefix`` allowed).
    """

    name: str
    expression: Any
    adapter: TypeAdapter[Any]
    text: bool


@dataclass(frozen=True, slots=True)
class Condition:
    """One filter condition: ``field op value``.

    Attributes:
        field: the field's name.
        operator: the operator's name (``gte``).
        value: the validated value (a list for ``in``, a bool for ``null``).
        clause: the SQL expression, with the value as a bound parameter.
    """

    field: str
    operator: str
    value: Any
    clause: ColumnElement[bool]


@dataclass(frozen=True, slots=True)
class SortKey:
    """One key of the sort order.

    Attributes:
        field: the field.
        descending: largest first.
    """

    field: FieldInfo
    descending: bool = False

    @property
    def token(self) -> str:
        """The key as written in ``?sort=`` (``-created_at``)."""
        return ("-" if self.descending else "") + self.field.name


@dataclass(frozen=True, slots=True)
class ListQuery(Generic[M]):
    """A validated list request for model ``M``.

    Attributes:
        conditions: the filters, all of which must hold.
        sort: the order, ending with the primary key (a unique tiebreaker).
    """

    conditions: tuple[Condition, ...]
    sort: tuple[SortKey, ...]

    @property
    def signature(self) -> str:
        """The sort order as text; a cursor is only valid for the same order."""
        return ",".join(key.token for key in self.sort)

    def apply(self, statement: S) -> S:
        """Add the filters and the order (no paging) to ``statement``."""
        if self.conditions:
            statement = statement.where(*(c.clause for c in self.conditions))
        return statement.order_by(
            *(k.field.expression.desc() if k.descending else k.field.expression for k in self.sort)
        )

    def after(self, cursor: dict[str, Any]) -> ColumnElement[bool]:
        """The keyset condition "strictly after the cursor's row".

        Raises:
            BadRequest: ``invalid-cursor`` when the cursor was made for
                another sort order or its values do not fit the fields.
        """
        keys = cursor.get("k")
        if cursor.get("s") != self.signature:
            raise _bad_cursor("the cursor belongs to another sort order; start from the first page")
        if not isinstance(keys, list) or len(keys) != len(self.sort):
            raise _bad_cursor("the cursor is malformed")
        values = []
        for key, raw in zip(self.sort, keys, strict=True):
            try:
                values.append(key.field.adapter.validate_python(raw))
            except ValidationError:
                raise _bad_cursor("the cursor is malformed") from None
        branches = []
        for i, key in enumerate(self.sort):
            column = key.field.expression
            beyond = column < values[i] if key.descending else column > values[i]
            equal = [self.sort[j].field.expression == values[j] for j in range(i)]
            branches.append(and_(*equal, beyond))
        return or_(*branches)

    async def page(
        self,
        tx: AsyncSession,
        statement: Select[M],
        params: PageParams,
        *,
        transform: Callable[[Select[M]], Select[M]] | None = None,
    ) -> tuple[list[M], str | None]:
        """One page of ``statement``'s entities and the next page's cursor.

        Args:
            tx: the session.
            statement: a select of one entity (``select(Course)``), with
                any conditions of its own.
            params: ``limit`` and the decoded ``cursor`` (``page_params``).
            transform: a last change to the final statement (eager loads).

        Returns:
            The rows and the cursor of the next page (``None`` at the end).

        Raises:
            BadRequest: ``invalid-cursor``.
        """
        statement = self.apply(statement)
        if params.cursor is not None:
            statement = statement.where(self.after(params.cursor))
        statement = statement.limit(params.limit + 1)
        if transform is not None:
            statement = transform(statement)
        rows = list((await tx.scalars(statement)).all())
        if len(rows) <= params.limit:
            return rows, None
        rows = rows[: params.limit]
        return rows, params.cursor_after(self.position_of(rows[-1]))

    def position_of(self, row: Any) -> dict[str, Any]:
        """The keyset position just after ``row``: the sort and its key values."""
        keys = [to_jsonable_python(getattr(row, key.field.name)) for key in self.sort]
        return {"s": self.signature, "k": keys}

    def cursor_for(self, row: Any, params: PageParams | None = None) -> str:
        """The cursor of the page that starts after ``row``.

        Sealed for the request when ``params`` came from ``page_params``
        (the only kind a listing over HTTP accepts); plain otherwise.
        """
        position = self.position_of(row)
        return params.cursor_after(position) if params is not None else encode_cursor(position)


def _bad_cursor(detail: str) -> BadRequest:
    return BadRequest(detail, code=errors.INVALID_CURSOR)
