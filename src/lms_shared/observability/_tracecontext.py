"""W3C Trace Context (level 2) and B3 headers: parse exactly, format exactly.

Written here rather than taken from OpenTelemetry's
``TraceContextTextMapPropagator`` because the recommendation's rules for
bad input are ours to guarantee, and the SDK's propagator differs from
them: it reads only the first of repeated ``traceparent`` headers (the
text says two are invalid), searches the value instead of matching it,
knows nothing of the level-2 random flag, and has no B3. The propagator
in :mod:`._tracing` uses these functions, so spans of the OpenTelemetry
SDK follow the same rules.

The rules, from https://www.w3.org/TR/trace-context-2/:

* ``traceparent`` is ``version-traceid-parentid-flags``, lower-case hex.
  Version ``ff`` is invalid; version ``00`` is exactly 55 characters; a
  higher version is parsed as 00 where its first 55 characters allow it
  and what follows starts with ``-``. All-zero ids are invalid. More than
  one ``traceparent`` header is invalid. An invalid ``traceparent``
  restarts the trace and its ``tracestate`` is not read.
* flags: bit 0 ``sampled``; bit 1 ``random`` (level 2: the right-most
  seven bytes of the trace id are random). Other bits are not forwarded.
* ``tracestate``: repeated headers are one list; at most 32 members, keys
  ``simple`` or ``tenant@system``, no duplicates, values of printable
  ASCII without ``,`` and ``=``; empty members and optional whitespace are
  allowed. A member that breaks the rules, a duplicate key or a 33rd
  member makes the whole list invalid: it is discarded, the trace is kept.
* B3 (Zipkin): single ``b3: traceid-spanid[-sampling[-parentspanid]]`` or
  the ``X-B3-*`` headers; 64-bit trace ids are left-padded to 128 bits.
  Read only when no ``traceparent`` came; written beside it.

Every input is bounded before it is looked at.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "FLAG_RANDOM",
    "FLAG_SAMPLED",
    "MAX_TRACESTATE_MEMBERS",
    "TraceParent",
    "format_b3",
    "format_tracestate",
    "new_span_id",
    "new_trace_id",
    "parse_b3",
    "parse_traceparent",
    "parse_tracestate",
]

FLAG_SAMPLED = 0x01
FLAG_RANDOM = 0x02
_KNOWN_FLAGS = FLAG_SAMPLED | FLAG_RANDOM
MAX_TRACESTATE_MEMBERS = 32
MAX_HEADER_LENGTH = 8192
"""A longer ``traceparent`` or ``tracestate`` value is not read (restart or discard)."""

_HEX = frozenset("0123456789abcdef")
_KEY = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def _is_hex(text: str) -> bool:
    return all(char in _HEX for char in text)


def new_trace_id() -> str:
    """A random 128-bit trace id (all 16 bytes random: the random flag holds)."""
    while True:
        found = secrets.token_hex(16)
        if found != _ZERO_TRACE:
            return found


def new_span_id() -> str:
    """A random 64-bit span (parent) id."""
    while True:
        found = secrets.token_hex(8)
        if found != _ZERO_SPAN:
            return found


@dataclass(frozen=True, slots=True)
class TraceParent:
    """One valid ``traceparent``, with the ``tracestate`` members that came with it.

    Attributes:
        trace_id: 32 lower-case hex digits, not all zero.
        parent_id: 16 lower-case hex digits, not all zero.
        flags: the trace flags this vendor knows (sampled, random).
        tracestate: ``(key, value)`` members, left-most first.
    """

    trace_id: str
    parent_id: str
    flags: int = FLAG_RANDOM
    tracestate: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def new(cls, *, sampled: bool = True) -> TraceParent:
        """The start of a new trace: random ids, the random flag set."""
        flags = FLAG_RANDOM | (FLAG_SAMPLED if sampled else 0)
        return cls(new_trace_id(), new_span_id(), flags)

    @property
    def sampled(self) -> bool:
        """The caller may have recorded trace data."""
        return bool(self.flags & FLAG_SAMPLED)

    @property
    def random(self) -> bool:
        """The right-most seven bytes of the trace id are random (level 2)."""
        return bool(self.flags & FLAG_RANDOM)

    def child(self, parent_id: str | None = None) -> TraceParent:
        """The same trace under a new parent id (one per outgoing call)."""
        return TraceParent(self.trace_id, parent_id or new_span_id(), self.flags, self.tracestate)

    def header(self) -> str:
        """The ``traceparent`` value (version 00)."""
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags:02x}"

    def headers(self) -> dict[str, str]:
        """``traceparent`` and, when it has members, ``tracestate``."""
        found = {"traceparent": self.header()}
        if self.tracestate:
            found["tracestate"] = format_tracestate(self.tracestate)
        return found


def _parse_one(value: str) -> TraceParent | None:
    value = value.strip(" \t")
    if len(value) < 55 or len(value) > MAX_HEADER_LENGTH:
        return None
    version = value[:2]
    if not _is_hex(version) or version == "ff" or value[2] != "-":
        return None
    if version == "00" and len(value) != 55:
        return None
    if len(value) > 55 and value[55] != "-":
        return None  # a higher version: what follows the 00 fields starts with "-"
    trace_id, parent_id, flags = value[3:35], value[36:52], value[53:55]
    if value[35] != "-" or value[52] != "-":
        return None
    if not (_is_hex(trace_id) and _is_hex(parent_id) and _is_hex(flags)):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, parent_id, int(flags, 16) & _KNOWN_FLAGS)


def parse_traceparent(
    traceparents: Sequence[str], tracestates: Sequence[str] = ()
) -> TraceParent | None:
    """The trace context of a request's headers, or ``None`` to restart the trace.

    Args:
        traceparents: every ``traceparent`` header value (more than one is invalid).
        tracestates: every ``tracestate`` header value, in order.
    """
    if len(traceparents) != 1:
        return None
    found = _parse_one(traceparents[0])
    if found is None:
        return None
    state = parse_tracestate(tracestates)
    if not state:
        return found
    return TraceParent(found.trace_id, found.parent_id, found.flags, state)


def parse_tracestate(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The members of ``tracestate`` headers; ``()`` when the list is invalid.

    Repeated headers are joined as one list (RFC 9110 §5.3).
    """
    if sum(len(v) for v in values) > MAX_HEADER_LENGTH:
        return ()
    members: list[tuple[str, str]] = []
    seen: set[str] = set()
    for value in values:
        for raw in value.split(","):
            member = raw.strip(" \t")
            if not member:
                continue
            key, sep, item = member.partition("=")
            if not sep or _KEY.fullmatch(key) is None or _VALUE.fullmatch(item) is None:
                return ()
            if key in seen or len(members) == MAX_TRACESTATE_MEMBERS:
                return ()
            seen.add(key)
            members.append((key, item))
    return tuple(members)


def format_tracestate(members: Iterable[tuple[str, str]]) -> str:
    """``key=value,...``, at most 32 members (the right-most are dropped)."""
    return ",".join(f"{k}={v}" for k, v in list(members)[:MAX_TRACESTATE_MEMBERS])


def _b3_trace_id(value: str) -> str | None:
    if len(value) == 16:
        value = "0" * 16 + value
    if len(value) != 32 or not _is_hex(value) or value == _ZERO_TRACE:
        return None
    return value


def parse_b3(headers: Mapping[str, str]) -> TraceParent | None:
    """The trace context of B3 headers (``b3``, else ``x-b3-*``), or ``None``.

    Args:
        headers: lower-case header names to their (single) values.

    B3 ids are not known to be random, so the random flag is not set.
    """
    single = headers.get("b3")
    if single is not None:
        if len(single) > 200:
            return None
        parts = single.strip().split("-")
        if len(parts) == 1:
            return None  # a sampling decision alone ("0", "1", "d") carries no ids
        if len(parts) > 4:
            return None
        trace_id, span_id = _b3_trace_id(parts[0]), parts[1]
        sampling = parts[2] if len(parts) > 2 else "1"
    else:
        raw_trace = headers.get("x-b3-traceid")
        raw_span = headers.get("x-b3-spanid")
        if raw_trace is None or raw_span is None or len(raw_trace) > 64 or len(raw_span) > 64:
            return None
        trace_id, span_id = _b3_trace_id(raw_trace.strip()), raw_span.strip()
        if headers.get("x-b3-flags", "").strip() == "1":
            sampling = "d"
        else:
            raw = headers.get("x-b3-sampled", "1").strip().lower()
            sampling = {"true": "1", "false": "0"}.get(raw, raw)
    if trace_id is None or len(span_id) != 16 or not _is_hex(span_id) or span_id == _ZERO_SPAN:
        return None
    if sampling not in {"0", "1", "d"}:
        return None
    return TraceParent(trace_id, span_id, FLAG_SAMPLED if sampling in {"1", "d"} else 0)


def format_b3(parent: TraceParent) -> str:
    """The single ``b3`` header of ``parent``: ``traceid-spanid-sampling``."""
    return f"{parent.trace_id}-{parent.parent_id}-{1 if parent.sampled else 0}"
