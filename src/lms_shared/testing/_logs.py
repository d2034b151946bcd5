"""The in-memory log reader: the lines a block of code writes, as dicts, with assertions.

:func:`capture_logs` captures structlog lines and standard-library records
(uvicorn, SQLAlchemy, ``logging.getLogger(...)``) after the library's own
context and redaction processors, so a captured line is what production
writes: ``service``, ``version``, ``request_id``, ``trace_id``/``span_id``
inside a span, secrets and personal data masked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from lms_shared.observability._logging import capturing, context_processors, stdlib_processors
from lms_shared.observability._logstore import severity_of

__all__ = ["CapturedLogs", "capture_logs"]

_MISSING = object()


class CapturedLogs(list[dict[str, Any]]):
    """The captured lines: a list of event dicts, with finders and assertions.

    Filters shared by :meth:`find`, :meth:`assert_logged` and
    :meth:`assert_not_logged`: ``event`` (exact), ``level`` (that level or
    above: ``"warning"`` matches errors too), ``logger`` (the
    ``logger_name``, or a dotted parent of it), and any other field by
    exact value (``trace_id=...``, ``status=500``).
    """

    def events(self, event: str) -> list[dict[str, Any]]:
        """The lines whose ``event`` equals ``event``."""
        return [line for line in self if line.get("event") == event]

    def find(
        self,
        event: str | None = None,
        *,
        level: str | None = None,
        logger: str | None = None,
        **fields: Any,
    ) -> list[dict[str, Any]]:
        """The lines matching every filter given."""
        floor = severity_of(level) if level is not None else 0
        found = []
        for line in self:
            if event is not None and line.get("event") != event:
                continue
            if severity_of(str(line.get("log_level", "info"))) < floor:
                continue
            if logger is not None:
                name = str(line.get("logger_name") or "")
                if name != logger and not name.startswith(logger + "."):
                    continue
            if any(line.get(k, _MISSING) != v for k, v in fields.items()):
                continue
            found.append(line)
        return found

    def assert_logged(
        self,
        event: str | None = None,
        *,
        level: str | None = None,
        logger: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """The first line matching the filters.

        Raises:
            AssertionError: none matches; the message lists what was logged.
        """
        found = self.find(event, level=level, logger=logger, **fields)
        if not found:
            wanted = {"event": event, "level": level, "logger": logger, **fields}
            shown = {k: v for k, v in wanted.items() if v is not None}
            raise AssertionError(f"no log line matches {shown}; logged:\n{self._summary()}")
        return found[0]

    def assert_not_logged(
        self,
        event: str | None = None,
        *,
        level: str | None = None,
        logger: str | None = None,
        **fields: Any,
    ) -> None:
        """Raise if any line matches the filters (``assert_not_logged(level="error")``).

        Raises:
            AssertionError: naming the matching lines.
        """
        found = self.find(event, level=level, logger=logger, **fields)
        if found:
            raise AssertionError(f"{len(found)} unexpected log line(s): {found[:5]}")

    def assert_never_contains(self, *values: str) -> None:
        """Raise if any of ``values`` (a password, a token, an email) appears in any line.

        The lines are searched as rendered (every field, at any depth).

        Raises:
            AssertionError: naming the value and the line it leaked into.
        """
        for line in self:
            text = orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
            for value in values:
                if value and value in text:
                    raise AssertionError(f"{value[:4]}... leaked into a log line: {text[:300]}")

    def for_trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The lines written inside trace ``trace_id``."""
        return self.find(trace_id=trace_id)

    def for_request(self, request_id: str) -> list[dict[str, Any]]:
        """The lines written for request ``request_id``."""
        return self.find(request_id=request_id)

    def _summary(self, limit: int = 20) -> str:
        rows = [
            f"  {line.get('log_level', '?')} {line.get('logger_name') or '-'}: "
            f"{line.get('event')!r}"
            for line in self[-limit:]
        ]
        return "\n".join(rows) or "  (nothing)"


class _Keep(logging.Handler):
    """Appends the records of the standard library to the capture."""

    def __init__(self, captured: CapturedLogs) -> None:
        super().__init__()
        self.captured = captured

        def keep(_: WrappedLogger, method: str, event_dict: EventDict) -> str:
            event_dict["log_level"] = method
            self.captured.append(dict(event_dict))
            return ""

        self.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=stdlib_processors(),
                pass_foreign_args=True,
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    keep,
                ],
            )
        )

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


@contextmanager
def capture_logs(*, stdlib: bool = True) -> Iterator[CapturedLogs]:
    """Capture every log line written inside the block.

    Each line is the event dict after the library's context and privacy
    processors (:func:`lms_shared.observability._logging.context_processors`),
    with ``log_level`` set. structlog lines are captured at every level;
    standard-library records at the levels their loggers are set to.
    Capture replaces the configured structlog processors for the block; a
    service started inside it (its lifespan configures logging) still
    writes into the capture.

    Args:
        stdlib: also capture standard-library records.
    """
    captured = CapturedLogs()

    def keep(_: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        event_dict["log_level"] = method
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    old = structlog.get_config()
    structlog.configure(
        processors=[*context_processors(), keep],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    handler = _Keep(captured) if stdlib else None
    root = logging.getLogger()
    if handler is not None:
        root.addHandler(handler)
    try:
        with capturing():
            yield captured
    finally:
        if handler is not None:
            root.removeHandler(handler)
        structlog.configure(**old)
