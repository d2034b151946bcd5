"""The process-wide logging configuration, quarantined here.

structlog and the standard library's ``logging`` are global by nature; this
module is the only place that touches them. :func:`configure_logging` runs
in the service lifespan (and in ``lms-shared serve`` before uvicorn's first
line) and :func:`reset_logging` undoes it (tests).

Every line is one JSON object (rendered once, with orjson) carrying
``timestamp`` (UTC), ``level``, ``event``, ``logger_name``, the
``service`` and ``version`` of the process, the ``request_id`` of the
current request, the ``trace_id`` and ``span_id`` of the current span and
any bound keys. Secrets and personal data are masked by
:mod:`lms_shared.redaction` (the one source of what is sensitive) before a
line is rendered. Standard-library records (uvicorn, SQLAlchemy, the
OpenTelemetry SDK...) go through the same processors, ``extra=`` fields
included, so the whole process speaks one format.

Levels: one minimum for the process, and per logger (``LMS_LOG_LEVELS``):
the standard library's loggers get their level set, structlog lines are
gated on their ``logger_name``; a name covers its dotted children.

Beside standard output, each line is handed to a
:class:`~._logship.LogShipper` when one is configured (the embedded store
of the state folder, or OTLP to ``LMS_TELEMETRY_URL``): one append to a
bounded queue, never a wait.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from lms_shared.caching import BoundedCache
from lms_shared.observability._logship import LogShipper, OtlpLogSink, StoreSink
from lms_shared.observability._logstore import LogEntry, LogStore
from lms_shared.observability._tracing import current_span_ids
from lms_shared.observability.context import request_id_var
from lms_shared.redaction import Redactor, redact_personal_data
from lms_shared.settings import Settings, check_log_levels

__all__ = [
    "LineWriter",
    "configure_logging",
    "configure_service_logging",
    "context_processors",
    "get_logger",
    "is_configured",
    "log_shipper",
    "reset_logging",
]

_state: dict[str, Any] = {
    "configured": False,
    "handler": None,
    "captures": 0,
    "fast": None,
    "gate": None,
    "static": {},
    "shipper": None,
    "ship_key": None,
    "generation": 0,
    "stdlib_levels": {},
    "atexit": False,
    "flush_pending": False,
}
_NUMERIC = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "err": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
# standard attributes of a logging.LogRecord; anything else came from extra=
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with terminal colours
}
# standard-library loggers quieter than the root unless LMS_LOG_LEVELS says otherwise:
# httpx logs every request's URL, query string included, at info
_STDLIB_DEFAULTS = {"httpx": logging.WARNING, "httpcore": logging.WARNING}


def _add_request_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def _add_span_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    ids = current_span_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


def _add_static(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key, value in _state["static"].items():
        event_dict.setdefault(key, value)
    return event_dict


def _add_stdlib_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """``logger_name`` and ``extra=`` fields of a standard-library record."""
    record: logging.LogRecord | None = event_dict.get("_record")
    args = event_dict.pop("positional_args", None)  # ProcessorFormatter(pass_foreign_args=True)
    if record is None:
        return event_dict
    event_dict["logger_name"] = record.name
    for key, value in record.__dict__.items():
        if key not in _RECORD_ATTRS and not key.startswith("_"):
            event_dict.setdefault(key, value)
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, path, http_version, status = args
        path = str(path).split("?", 1)[0]  # a query string may carry what never gets logged
        event_dict.update(
            event=f"{method} {path} {status}",
            client_addr=client,
            method=method,
            path=path,
            http_version=http_version,
            status=status,
        )
    return event_dict


def context_processors() -> list[Processor]:
    """The processors every line goes through before it is rendered.

    Context (bound keys, service, version, request id, trace and span ids),
    then redaction: secrets and personal data under well-known keys at any
    depth, and fields marked ``Personal()`` in models, masked as the model
    says. :func:`lms_shared.testing.capture_logs` uses the same list, so
    captured lines are what production writes (without ``level`` and
    ``timestamp``, which the rendered line adds).
    """
    return [
        structlog.contextvars.merge_contextvars,
        _add_static,
        _add_request_id,
        _add_span_ids,
        Redactor(),
        redact_personal_data,
    ]


_LEVEL_AND_TIME: list[Processor] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def stdlib_processors() -> list[Processor]:
    """The processors of a standard-library record.

    The ``foreign_pre_chain`` of a ``ProcessorFormatter`` made with
    ``pass_foreign_args=True`` (uvicorn's access line is read from its arguments).
    """
    return [_add_stdlib_fields, *context_processors()]


class _LevelGate:
    """Drops structlog lines below the level of their ``logger_name`` (``LMS_LOG_LEVELS``)."""

    def __init__(self, root: int, levels: Mapping[str, int]) -> None:
        self.root = root
        self.levels = dict(levels)
        self._found: BoundedCache[str, int] = BoundedCache(4096)

    def level_of(self, name: str | None) -> int:
        """The minimum level of logger ``name`` (its own, its nearest parent's, the root's)."""
        if not name:
            return self.root
        found = self._found.get(name)
        if found is None:
            found = self.root
            probe = name
            while probe:
                if probe in self.levels:
                    found = self.levels[probe]
                    break
                probe = probe.rpartition(".")[0]
            self._found.set(name, found)
        return found

    def __call__(self, _: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        if _NUMERIC.get(method, logging.INFO) < self.level_of(event_dict.get("logger_name")):
            raise structlog.DropEvent
        return event_dict


def _default(value: Any) -> Any:
    hook = getattr(value, "__structlog__", None)
    return hook() if callable(hook) else str(value)


def _dumps(event_dict: EventDict) -> str:
    return orjson.dumps(event_dict, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _ship(event_dict: Mapping[str, Any], line: str) -> None:
    shipper: LogShipper | None = _state["shipper"]
    if shipper is None:
        return
    shipper.submit(
        LogEntry(
            ts_ns=time.time_ns(),
            level=str(event_dict.get("level", "info")),
            service=str(event_dict.get("service") or "unknown"),
            logger=_text(event_dict.get("logger_name")),
            event=_text(event_dict.get("event")),
            trace_id=_text(event_dict.get("trace_id")),
            span_id=_text(event_dict.get("span_id")),
            request_id=_text(event_dict.get("request_id")),
            line=line,
        )
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class _Output:
    """The last processor: JSON rendered once, shipped, and the text for the stream."""

    def __init__(self, fmt: Literal["json", "console"]) -> None:
        self.json = fmt == "json"
        self.console = structlog.dev.ConsoleRenderer(colors=False)

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        if self.json:
            line = _dumps(event_dict)
            _ship(event_dict, line)
            return line
        if _state["shipper"] is not None:
            _ship(event_dict, _dumps(event_dict))
        return str(self.console(logger, method, event_dict))


def configure_logging(
    *,
    level: str = "info",
    fmt: Literal["json", "console"] = "json",
    stream: TextIO | None = None,
    levels: Mapping[str, str] | None = None,
    service: str | None = None,
    version: str | None = None,
    shipper: LogShipper | None = None,
) -> None:
    """Send structlog and standard-library logs to ``stream`` in one format.

    Args:
        level: minimum level (``debug``, ``info``, ``warning``, ``error``, ``critical``).
        fmt: ``json`` for machines, ``console`` for people.
        stream: where lines go; standard output by default.
        levels: minimum level per logger name, over ``level`` (``LMS_LOG_LEVELS``).
        service: ``service`` of every line that did not bind its own.
        version: ``version`` of every line that did not bind its own.
        shipper: also hands every line to it (the embedded store, OTLP); it
            belongs to the configuration from now on and is closed when
            replaced or by :func:`reset_logging`.

    Raises:
        ValueError: an unknown level, or a malformed ``levels`` entry.
    """
    stream = stream or sys.stdout
    numeric = _level(level)
    per_logger = {name: _level(lvl) for name, lvl in check_log_levels(dict(levels or {})).items()}
    gate = _LevelGate(numeric, per_logger) if per_logger else None
    lowest = min([numeric, *per_logger.values()])
    output = _Output(fmt)
    if _state["fast"] is not None:
        _flush_now(_state["fast"])
    old_shipper: LogShipper | None = _state["shipper"]
    if old_shipper is not None and old_shipper is not shipper:
        old_shipper.close()
    static = {k: v for k, v in (("service", service), ("version", version)) if v is not None}
    _state.update(shipper=shipper, static=static, gate=gate)
    if shipper is not None and not _state["atexit"]:
        atexit.register(_close_at_exit)  # the last lines of a stopping process are delivered
        _state["atexit"] = True
    if _state["captures"] == 0:  # a test capturing lines keeps its capture
        structlog.configure(
            processors=[
                *([gate] if gate is not None else []),
                *context_processors(),
                *_LEVEL_AND_TIME,
                structlog.processors.StackInfoRenderer(),
                structlog.processors.format_exc_info,
                output,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(lowest),
            logger_factory=structlog.PrintLoggerFactory(stream),
            cache_logger_on_first_use=False,
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*stdlib_processors(), *_LEVEL_AND_TIME],
        pass_foreign_args=True,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            output,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _state["handler"] is not None:
        root.removeHandler(_state["handler"])
    root.addHandler(handler)
    root.setLevel(numeric)
    _restore_stdlib_levels()
    for name, value in {**_STDLIB_DEFAULTS, **per_logger}.items():
        named = logging.getLogger(name)
        _state["stdlib_levels"][name] = named.level
        named.setLevel(value)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        if named.handlers:  # a logger uvicorn disabled (--no-access-log) stays off
            named.handlers.clear()
            named.propagate = True
    _state.update(
        configured=True,
        handler=handler,
        fast=stream if fmt == "json" else None,
        generation=_state["generation"] + 1,
    )


def configure_service_logging(
    settings: Settings,
    *,
    service: str,
    version: str,
    stream: TextIO | None = None,
) -> None:
    """:func:`configure_logging` from a service's settings, with its central sink.

    ``LMS_TELEMETRY_URL`` set: lines are also exported to that collector
    over OTLP/HTTP; unset: also kept in the embedded store of
    ``LMS_STATE_DIR`` (``lms-shared logs`` searches it). Called again with
    the same service and destination (``serve``, then the lifespan), the
    running shipper is kept. ``LMS_LOG_SHIP=false``: standard output only.
    """
    key = (settings.telemetry_url, str(Path(settings.state_dir).resolve()), service, version)
    shipper: LogShipper | None = _state["shipper"]
    if not settings.log_ship:
        shipper = None
    elif shipper is None or _state["ship_key"] != key:
        if settings.telemetry_url:
            resource = {
                "service.name": service,
                "service.version": version,
                "deployment.environment.name": str(settings.env),
            }
            shipper = LogShipper(OtlpLogSink(settings.telemetry_url, resource=resource))
        else:
            shipper = LogShipper(StoreSink(LogStore.in_state_dir(settings.state_dir)))
    configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        stream=stream,
        levels=settings.log_levels,
        service=service,
        version=version,
        shipper=shipper,
    )
    _state["ship_key"] = key


def _level(name: str) -> int:
    found = _NUMERIC.get(name.lower()) if isinstance(name, str) else None
    if found is None:
        raise ValueError(f"unknown log level {name!r}")
    return found


def _restore_stdlib_levels() -> None:
    for name, value in _state["stdlib_levels"].items():
        logging.getLogger(name).setLevel(value)
    _state["stdlib_levels"] = {}


def _close_at_exit() -> None:
    shipper: LogShipper | None = _state["shipper"]
    if shipper is not None:
        shipper.close(timeout=2.0)


def reset_logging() -> None:
    """Undo :func:`configure_logging`: structlog defaults, root handler removed, shipper closed.

    Lines still queued for the store or collector are delivered first
    (within the shipper's close timeout).
    """
    if _state["handler"] is not None:
        logging.getLogger().removeHandler(_state["handler"])
    if _state["fast"] is not None:
        _flush_now(_state["fast"])  # nothing written waits for a turn that may not come
    _restore_stdlib_levels()
    shipper: LogShipper | None = _state["shipper"]
    if shipper is not None:
        shipper.close()
    structlog.reset_defaults()
    _state.update(
        configured=False,
        handler=None,
        fast=None,
        gate=None,
        static={},
        shipper=None,
        ship_key=None,
        generation=_state["generation"] + 1,
    )


def is_configured() -> bool:
    """Whether :func:`configure_logging` has run (and not been reset)."""
    return bool(_state["configured"])


def log_shipper() -> LogShipper | None:
    """The shipper lines go to besides the stream (its counters feed metrics), if any."""
    shipper: LogShipper | None = _state["shipper"]
    return shipper


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger, optionally with keys bound to every line.

    Args:
        name: logger name, added as ``logger_name`` (``LMS_LOG_LEVELS`` keys on it).
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
    no personal data, so when logging is configured for JSON and the
    writer's logger is enabled at info, the line is rendered with orjson,
    written straight to the stream (flushed within :data:`FLUSH_EVERY`
    seconds, so the lines of many requests share one write) and handed to
    the shipper. Otherwise
    (console format, a test capturing lines, or logging not configured) it
    goes through structlog like any other line.

    Args:
        event: the ``event`` of every line.
        name: the ``logger_name`` of every line.
        **bound: keys on every line (service, version).
    """

    def __init__(self, event: str, name: str, **bound: Any) -> None:
        self.event = event
        self.name = name
        self.bound = {**bound, "logger_name": name}
        self.slow = get_logger(name, **bound)
        self._generation = -1
        self._enabled = True

    def __call__(self, **fields: Any) -> None:
        """Write one line with ``fields``."""
        stream = _state["fast"]
        if stream is None or _state["captures"]:
            self.slow.info(self.event, **fields)
            return
        if self._generation != _state["generation"]:
            gate: _LevelGate | None = _state["gate"]
            root = logging.getLogger().level
            minimum = gate.level_of(self.name) if gate is not None else root
            self._enabled = minimum <= logging.INFO
            self._generation = _state["generation"]
        if not self._enabled:
            return
        line = {**_state["static"], **self.bound, **fields, "event": self.event}
        request_id = request_id_var.get()
        if request_id is not None:
            line["request_id"] = request_id
        ids = current_span_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        line["level"] = "info"
        line["timestamp"] = datetime.now(UTC)  # orjson writes it, "Z" for UTC
        text = orjson.dumps(line, default=str, option=orjson.OPT_UTC_Z).decode()
        stream.write(text + "\n")
        _flush_soon(stream)
        _ship(line, text)


FLUSH_EVERY = 0.05
"""Seconds an access line may wait in the stream's buffer (inside an event loop)."""


def _flush_soon(stream: TextIO) -> None:
    """Flush ``stream`` within :data:`FLUSH_EVERY` seconds (at once outside an event loop).

    A flush is a write system call; one per request cost about 14 µs of a
    served request's CPU. The lines of all the requests of the next 50 ms
    leave in one write instead (or sooner, when the buffer fills), so a
    line waits at most that long; :func:`reset_logging` and a new
    configuration flush what waits.
    """
    if _state["flush_pending"]:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        stream.flush()
        return
    _state["flush_pending"] = True
    loop.call_later(FLUSH_EVERY, _flush_now, stream)


def _flush_now(stream: TextIO) -> None:
    _state["flush_pending"] = False
    with suppress(ValueError, OSError):  # a closed or broken stream loses its lines, no more
        stream.flush()
