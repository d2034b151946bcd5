"""Capture the log lines a block of code writes, as dicts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from lms_shared.models import redact_personal_data
from lms_shared.observability._logging import capturing
from lms_shared.observability.context import request_id_var
from lms_shared.security import Redactor

__all__ = ["CapturedLogs", "capture_logs"]


class CapturedLogs(list[dict[str, Any]]):
    """The captured lines; a list of event dicts with helpers."""

    def events(self, event: str) -> list[dict[str, Any]]:
        """The lines whose ``event`` equals ``event``."""
        return [line for line in self if line.get("event") == event]


@contextmanager
def capture_logs() -> Iterator[CapturedLogs]:
    """Capture every structlog line written inside the block.

    Each line is the event dict after the library's context and privacy
    processors (``request_id`` is included; secrets and personal data are
    masked as in production), with ``log_level`` set. Capture replaces
    the configured processors for the duration of the block.
    """
    captured = CapturedLogs()

    def add_request_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        request_id = request_id_var.get()
        if request_id is not None:
            event_dict.setdefault("request_id", request_id)
        return event_dict

    def keep(_: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        event_dict["log_level"] = method
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    old = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_request_id,
            Redactor(),
            redact_personal_data,
            keep,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    try:
        with capturing():
            yield captured
    finally:
        structlog.configure(**old)
