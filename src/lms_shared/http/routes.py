"""The app's routes as a flat list, whatever the framework nests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from lms_shared.types import Scope

__all__ = ["flatten_routes", "route_template"]


def flatten_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, including those of included routers.

    FastAPI (0.165 and later) keeps an included router as one entry whose
    ``effective_candidates()`` are its routes with the prefix applied; a
    route of ``service.api(1)`` is only found by looking inside.
    """
    for route in routes:
        nested = getattr(route, "effective_candidates", None)
        if callable(nested):
            yield from flatten_routes(nested())
        else:
            yield route


def route_template(scope: Scope) -> str | None:
    """The matched route's path template (``/v1/courses/{course_id}``), or ``None``."""
    route = scope.get("route")
    if route is None:
        return None
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else None
