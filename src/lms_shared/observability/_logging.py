"""The process-wide logging configuration, quarantined here.

structlog and the standard library's ``logging`` are global by nature; this
module is the only place that touches them. :func:`configure_logging` runs
in the service lifespan and :func:`reset_logging` undoes it (tests).

Every line is one JSON object (rendered with orjson) carrying the level, a
UTC timestamp, the request id of the current request and any bound keys.
Standard-library records (uvicorn, SQLAlchemy, ...) go through the same
renderer so the whole process speaks one format.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from lms_shared.observability.context import request_id_var

__all__ = ["LineWriter", "configure_logging", "get_logger", "is_configured", "reset_logging"]

_state: dict[str, Any] = {"configured": False, "handler": None, "captures": 0, "fast": None}


def _add_request_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def _add_stdlib_logger_name(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    if record is not None:
        event_dict["logger_name"] = record.name
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def _shared_processors() -> list[Processor]:
    # personal data (marked in the models, or known keys) never reaches a log line;
    # imported here, at configure time: lms_shared.models imports the http layer
    from lms_shared.models import redact_personal_data  # noqa: PLC0415
    from lms_shared.security import Redactor  # noqa: PLC0415

    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        Redactor(),  # secrets and personal data under well-known keys
        redact_personal_data,  # fields marked Personal() in models, masked as the model says
    ]


def configure_logging(
    *,
    level: str = "info",
    fmt: Literal["json", "console"] = "json",
    stream: TextIO | None = None,
) -> None:
    """Send structlog and standard-library logs to ``stream`` in one format.

    Args:
        level: minimum level (``debug``, ``info``, ``warning``, ``error``).
        fmt: ``json`` for machines, ``console`` for people.
        stream: where lines go; standard output by default.
    """
    stream = stream or sys.stdout
    numeric = logging.getLevelNamesMapping()[level.upper()]
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    shared = _shared_processors()
    if _state["captures"] == 0:  # a test capturing lines keeps its capture
        structlog.configure(
            processors=[
                *shared,
                structlog.processors.StackInfoRenderer(),
                structlog.processors.format_exc_info,
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.PrintLoggerFactory(stream),
            cache_logger_on_first_use=False,
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _add_stdlib_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _state["handler"] is not None:
        root.removeHandler(_state["handler"])
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        if named.handlers:  # a logger uvicorn disabled (--no-access-log) stays off
            named.handlers.clear()
            named.propagate = True
    fast = stream if fmt == "json" and numeric <= logging.INFO else None
    _state.update(configured=True, handler=handler, fast=fast)


def reset_logging() -> None:
    """Undo :func:`configure_logging`: structlog defaults, root handler removed."""
    if _state["handler"] is not None:
        logging.getLogger().removeHandler(_state["handler"])
    structlog.reset_defaults()
    _state.update(configured=False, handler=None, fast=None)


def is_configured() -> bool:
    """Whether :func:`configure_logging` has run (and not been reset)."""
    return bool(_state["configured"])


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger, optionally with keys bound to every line.

    Args:
        name: logger name, added as ``logger_name``.
        **initial: keys bound to every line of this logger.
    """
    if name is not None:
        initial["logger_name"] = name
    # keyword values keep the proxy lazy: configuration made later (in the
    # lifespan) still applies to loggers created at construction time
    return structlog.get_logger(**initial)


@contextmanager
def capturing() -> Iterator[None]:
    """Keep :func:`configure_logging` from replacing a test's log capture.

    Used by :func:`lms_shared.testing.capture_logs`, so a service started
    inside a capture block (its lifespan configures logging) still writes
    into the capture.
    """
    _state["captures"] += 1
    try:
        yield
    finally:
        _state["captures"] -= 1


class LineWriter:
    """Writes one fixed-shape info line per call, as cheaply as possible.

    The access log writes a line per request. Through the whole structlog
    chain that costs more than some routes; its fields are known and hold
    no personal data, so when logging is configured for JSON at info level
    the line is rendered with orjson and written straight to the stream.
    Otherwise (console format, a higher level, a test capturing lines, or
    logging not configured) it goes through structlog like any other line.

    Args:
        event: the ``event`` of every line.
        name: the ``logger_name`` of every line.
        **bound: keys on every line (service, version).
    """

    def __init__(self, event: str, name: str, **bound: Any) -> None:
        self.event = event
        self.bound = {**bound, "logger_name": name}
        self.slow = get_logger(name, **bound)

    def __call__(self, **fields: Any) -> None:
        """Write one line with ``fields``."""
        stream = _state["fast"]
        if stream is None or _state["captures"]:
            self.slow.info(self.event, **fields)
            return
        line = {**self.bound, **fields, "event": self.event}
        request_id = request_id_var.get()
        if request_id is not None:
            line["request_id"] = request_id
        line["level"] = "info"
        line["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        stream.write(orjson.dumps(line, default=str).decode() + "\n")
        stream.flush()
