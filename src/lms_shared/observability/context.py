"""Per-request context shared by middleware, handlers and log lines.

A leaf module: one :class:`~contextvars.ContextVar` per value, set by the
request middleware for the duration of a request.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["current_request_id", "request_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("lms_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served by this task, if any."""
    return request_id_var.get()
