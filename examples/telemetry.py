"""What the demo prints at the end: the scenario's trace as a tree, and the dependency map.

The services keep their spans in the state folder's embedded store
(``LMS_TELEMETRY_URL`` unset) and register their declarations in the
local discovery registry; this reads both, as ``lms-shared traces show``
and ``lms-shared map`` do.
"""

from __future__ import annotations

import time

from lms_shared.cli._map import build_map
from lms_shared.cli._traces import render_tree
from lms_shared.observability._spanstore import SpanRecord, SpanStore
from lms_shared.settings import Settings

__all__ = ["LAST_HOP", "map_lines", "trace_lines", "wait_for_trace"]

LAST_HOP = "process lms.enrollment.created"
"""The span that ends the scenario's traced enrollment: grading handling the event."""


def wait_for_trace(
    settings: Settings, trace_id: str, *, until: str = LAST_HOP, timeout: float = 5.0
) -> list[SpanRecord]:
    """The trace's spans, once it is whole (or ``timeout`` passed).

    Whole: the span named ``until`` is stored, the parent of every span but
    the root, and the other side of every call and publication. Services
    export spans about once a second, each on its own: the last hops are
    usually a second or two behind the answer the scenario got.
    """
    store = SpanStore.in_state_dir(settings.state_dir)
    deadline = time.monotonic() + timeout
    while True:
        spans = store.trace(trace_id)
        if _complete(spans, until) or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def _complete(spans: list[SpanRecord], until: str) -> bool:
    # the last hop is stored; every span's parent too, but the one root's (the
    # scenario's own span id, which no service stored); and every call and
    # publication has its other side (the callee's SERVER span, a CONSUMER span)
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_id not in ids]
    parents = {s.parent_id for s in spans}
    calls = [s for s in spans if s.kind == "producer" or "peer.service" in s.attributes]
    answered = all(s.span_id in parents for s in calls)
    return len(roots) == 1 and answered and any(s.name == until for s in spans)


def trace_lines(spans: list[SpanRecord]) -> list[str]:
    """The trace as an indented tree, one span a line."""
    return render_tree(spans)


def map_lines(settings: Settings) -> list[str]:
    """The dependency map of the running platform, one edge a line, then its drift."""
    found = build_map(settings)
    lines = found.to_text()
    lines.append(
        f"drift: {len(found.undeclared())} undeclared, {len(found.unused())} declared but unused"
    )
    return lines
