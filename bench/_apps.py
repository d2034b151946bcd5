"""The apps under test: one tiny JSON route, ``GET /ok`` -> ``{"ok": true}``.

The FastAPI and lms-shared variants share the very same endpoint code, so
their difference is the service stack alone (middleware, problem handlers,
health and OpenAPI routes of :func:`lms_shared.create_service`).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from lms_shared import create_service, load_settings

__all__ = ["APPS", "NAMES", "PATH"]

PATH = "/ok"


def starlette_app() -> ASGIApp:
    """Bare Starlette: a route returning a ``JSONResponse``."""

    async def ok(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route(PATH, ok)])


async def _ok() -> dict[str, bool]:
    return {"ok": True}


def fastapi_app() -> ASGIApp:
    """Bare FastAPI with the default settings."""
    app = FastAPI()
    app.get(PATH)(_ok)
    return app


def lms_app() -> ASGIApp:
    """A service from ``create_service`` with its full default stack.

    JSON logs at ``info`` so every request writes its access log line (to
    standard output: the benchmark sends it to a file).
    """
    service = create_service(
        "bench", version="1.0.0", settings=load_settings(log_format="json", log_level="info")
    )
    service.router.get(PATH)(_ok)
    return service.app


APPS: dict[str, Callable[[], ASGIApp]] = {
    "starlette": starlette_app,
    "fastapi": fastapi_app,
    "lms": lms_app,
}
NAMES = {"starlette": "Starlette", "fastapi": "FastAPI", "lms": "lms-shared"}
