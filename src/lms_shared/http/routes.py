"""The app's routes: as a flat list whatever the framework nests, and in a cheaper order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from lms_shared.types import Scope

__all__ = ["flatten_routes", "move_behind", "route_template"]


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


def move_behind(routes: list[Any], own: Iterable[Any]) -> int:
    """Move the ``own`` routes that no other route can shadow behind all others.

    Starlette finds a request's route by trying every route in order (a
    regular expression and a few calls each, ~1.4 µs here), and the
    chassis adds its routes (docs, health probes, ``/metrics``) before the
    service's own, so every request paid for all of them first. A route is
    moved only when the order cannot change any request's answer: its path
    is static (no parameters) and no other route's pattern matches that
    path, so whatever the order only it answers there and it answers
    nowhere else. A route the check cannot read (a host router, say) keeps
    every own route where it is.

    Args:
        routes: the router's list, reordered in place.
        own: the routes that may move (those the chassis added).

    Returns:
        How many routes moved.
    """
    leaves = list(flatten_routes(routes))
    if any(getattr(leaf, "path_regex", None) is None for leaf in leaves):
        return 0
    movable = []
    for route in own:
        path = getattr(route, "path", None)
        if route not in routes or getattr(route, "param_convertors", True) or not path:
            continue
        if not any(leaf is not route and leaf.path_regex.match(path) for leaf in leaves):
            movable.append(route)
    for route in movable:
        routes.remove(route)
    routes.extend(movable)
    return len(movable)
