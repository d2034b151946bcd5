"""List-query parameters of a request, parsed by a :class:`~lms_shared.db.QuerySpec`.

The spec (which fields filter and sort, with which operators) is database
work and lives in :mod:`lms_shared.db`; reading it from the request's
query string is HTTP glue and lives here::

    CourseQuery = Annotated[ListQuery[CourseRow], Depends(list_query(COURSES))]

The dependency reads the raw query string (the spec's own rules: one
canonical spelling, each parameter once, a typed 400 otherwise), and its
signature declares every filter (``status``, ``title[contains]``...) and
``sort`` as optional query parameters, so the OpenAPI document lists
them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Query, Request

from lms_shared.db import ListQuery, QuerySpec

__all__ = ["list_query"]

M = TypeVar("M")


def list_query(spec: QuerySpec[M]) -> Callable[[Request], Awaitable[ListQuery[M]]]:
    """A FastAPI dependency parsing the request's query string with ``spec``.

    Raises (from the dependency):
        InvalidFilter: an unknown field or operator, or a bad value (400).
        InvalidSort: an unknown or repeated sort field (400).
    """

    async def dependency(request: Request, **_: Any) -> ListQuery[M]:
        return spec.parse(request.query_params.multi_items())

    dependency.__signature__ = _signature(spec)  # type: ignore[attr-defined]
    return dependency


_HOW = {
    "eq": "equal to",
    "ne": "not equal to",
    "lt": "less than",
    "lte": "at most",
    "gt": "greater than",
    "gte": "at least",
    "in": "one of (comma-separated)",
    "contains": "containing",
    "icontains": "containing, ignoring case",
    "prefix": "starting with",
    "null": "is null (true) or is not (false)",
}


def _signature(spec: QuerySpec[Any]) -> inspect.Signature:
    # what FastAPI reads to document the parameters; the values are parsed by the spec
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    ]
    for name, ops in sorted(spec.filters.items()):
        for op in sorted(ops, key=lambda o: (o != "eq", o)):
            alias = name if op == "eq" else f"{name}[{op}]"
            query = Query(None, alias=alias, description=f"filter: {name} {_HOW[op]}")
            params.append(
                inspect.Parameter(
                    f"filter_{len(params)}", keyword, default=query, annotation=str | None
                )
            )
    if spec.sorts:
        fields = ", ".join(spec.sorts)
        query = Query(
            None,
            alias="sort",
            description=f"comma-separated fields, '-' first for descending: {fields}",
        )
        params.append(inspect.Parameter("sort", keyword, default=query, annotation=str | None))
    return inspect.Signature(params)
