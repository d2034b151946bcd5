"""Find a service from an import string (``package.module:attribute``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from fastapi import FastAPI

from lms_shared.service import Service

__all__ = ["load_app", "load_service"]


def load_app(target: str) -> FastAPI:
    """Import ``module:attribute`` and return its FastAPI app.

    The attribute may be a :class:`Service` or a FastAPI app; without
    ``:attribute`` the module's ``service`` (then ``app``) is used. The
    current directory is importable, as with uvicorn.

    Raises:
        ValueError: the module or attribute does not exist or is neither.
    """
    module_name, _, attribute = target.partition(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    names = [attribute] if attribute else ["service", "app"]
    for name in names:
        obj = getattr(module, name, None)
        if isinstance(obj, Service):
            return obj.app
        if isinstance(obj, FastAPI):
            return obj
    raise ValueError(f"{target!r} names no lms-shared Service or FastAPI app")


def load_service(target: str) -> Service:
    """Import ``module:attribute`` and return its :class:`Service`.

    A FastAPI app built by ``create_service`` is accepted too (its service
    is on ``app.state``).

    Raises:
        ValueError: the module or attribute does not exist, or is no service.
    """
    found = getattr(load_app(target).state, "service", None)
    if not isinstance(found, Service):
        raise ValueError(f"{target!r} is a FastAPI app not built by create_service")
    return found
