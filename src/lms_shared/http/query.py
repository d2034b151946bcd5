"""List-query parameters of a request, parsed by a :class:`~lms_shared.db.QuerySpec`.

The spec (which fields filter and sort, with which operators) is database
work and lives in :mod:`lms_shared.db`; reading it from the request's
query string is HTTP glue and lives here::

    CourseQuery = Annotated[ListQuery[CourseRow], Depends(list_query(COURSES))]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request

from lms_shared.db import ListQuery, QuerySpec

__all__ = ["list_query"]

M = TypeVar("M")


def list_query(spec: QuerySpec[M]) -> Callable[[Request], Awaitable[ListQuery[M]]]:
    """A FastAPI dependency parsing the request's query string with ``spec``.

    Raises (from the dependency):
        InvalidFilter: an unknown field or operator, or a bad value (400).
        InvalidSort: an unknown or repeated sort field (400).
    """

    async def dependency(request: Request) -> ListQuery[M]:
        return spec.parse(request.query_params.multi_items())

    return dependency
