"""The dependency map: who calls whom, who publishes and who consumes what.

Two sources meet here. *Declared* edges come from the services
themselves: each running service publishes, in its discovery
registration's metadata (:data:`CALLS`, :data:`PUBLISHES`,
:data:`CONSUMES`), the services it has clients of or said it depends on
(:meth:`lms_shared.Service.depends_on`) and the event types its bus
declared (``bus.publishes``, ``bus.subscribe``). *Observed* edges come
from traces: CLIENT spans (``peer.service``), PRODUCER and CONSUMER spans
(``messaging.destination.name``) of the embedded span store.

The map shows drift both ways: an observed edge that its service did not
declare (a client made on the fly, a subscription added outside the
service's declarations), and a declared edge never observed (a dependency
that is no longer used, or a path the traffic has not taken yet). A
service that declares nothing (not registered) is never judged.

Written by hand: this is the platform's own model of its graph; the
renderers (JSON, Mermaid, Graphviz DOT, text) are a few lines each.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CALLS",
    "CONSUMES",
    "PUBLISHES",
    "Declarations",
    "DependencyMap",
    "Edge",
    "EdgeKind",
    "observed_edges",
]

CALLS = "lms.calls"
"""Registration metadata: the services this one calls, comma-separated."""
PUBLISHES = "lms.publishes"
"""Registration metadata: the event types this service publishes."""
CONSUMES = "lms.consumes"
"""Registration metadata: the event types this service consumes."""

_MAX_VALUE = 1024  # a metadata value's bound (discovery.Instance)
_MAX_EDGES = 10_000  # the map keeps at most this many distinct edges

EdgeKind = Literal["calls", "publishes", "consumes"]


@dataclass(frozen=True, order=True)
class Edge:
    """One arrow of the map.

    Attributes:
        kind: ``calls`` (service to service), ``publishes`` (service to
            event type) or ``consumes`` (event type to service).
        source: the caller, the publisher, or the event type consumed.
        target: the called service, the event type published, or the consumer.
    """

    kind: EdgeKind
    source: str
    target: str

    @property
    def service(self) -> str:
        """The service whose declarations this edge belongs to."""
        return self.target if self.kind == "consumes" else self.source


@dataclass(frozen=True)
class Declarations:
    """What one service declares (its registration metadata).

    Attributes:
        service: the service's name.
        calls: the services it calls.
        publishes: the event types it publishes.
        consumes: the event types it consumes.
    """

    service: str
    calls: frozenset[str] = frozenset()
    publishes: frozenset[str] = frozenset()
    consumes: frozenset[str] = frozenset()

    def metadata(self) -> dict[str, str]:
        """The registration metadata entries (each bounded to 1,024 characters)."""
        out: dict[str, str] = {}
        for key, names in ((CALLS, self.calls), (PUBLISHES, self.publishes)):
            if names:
                out[key] = _joined(names)
        if self.consumes:
            out[CONSUMES] = _joined(self.consumes)
        return out

    @classmethod
    def from_metadata(cls, service: str, metadata: Mapping[str, str]) -> Declarations:
        """The declarations an instance's metadata carries (unknown keys ignored)."""

        def names(key: str) -> frozenset[str]:
            raw = metadata.get(key, "")[:_MAX_VALUE]
            return frozenset(n for n in (p.strip() for p in raw.split(",")) if n)

        return cls(service, names(CALLS), names(PUBLISHES), names(CONSUMES))

    def edges(self) -> set[Edge]:
        """The declared edges."""
        made = {Edge("calls", self.service, s) for s in self.calls}
        made |= {Edge("publishes", self.service, t) for t in self.publishes}
        made |= {Edge("consumes", t, self.service) for t in self.consumes}
        return made


def _joined(names: Iterable[str]) -> str:
    out = ""
    for name in sorted(names):
        candidate = f"{out},{name}" if out else name
        if len(candidate) > _MAX_VALUE:
            break  # bounded: the rest is left out rather than the entry refused
        out = candidate
    return out


def observed_edges(spans: Iterable[Mapping[str, Any]]) -> Counter[Edge]:
    """Count the edges a set of spans shows.

    Each span is a mapping with ``service``, ``kind`` (``client``,
    ``producer``, ``consumer``; others are ignored) and ``attributes``.
    """
    seen: Counter[Edge] = Counter()
    for span in spans:
        kind = span.get("kind")
        attributes = span.get("attributes") or {}
        service = span.get("service")
        if not isinstance(service, str) or not isinstance(attributes, Mapping):
            continue
        edge: Edge | None = None
        if kind == "client" and isinstance(attributes.get("peer.service"), str):
            edge = Edge("calls", service, attributes["peer.service"])
        elif kind in ("producer", "consumer"):
            destination = attributes.get("messaging.destination.name")
            if not isinstance(destination, str) or destination == "batch":
                continue
            if kind == "producer":
                edge = Edge("publishes", service, destination)
            else:
                edge = Edge("consumes", destination, service)
        if edge is not None and (edge in seen or len(seen) < _MAX_EDGES):
            seen[edge] += 1
    return seen


@dataclass
class DependencyMap:
    """Declared and observed edges, and the drift between them.

    Attributes:
        declared: what the services said, one entry per declaring service.
        observed: how often each edge was seen in the traces.
    """

    declared: dict[str, Declarations] = field(default_factory=dict)
    observed: Counter[Edge] = field(default_factory=Counter)

    @classmethod
    def build(
        cls, declarations: Iterable[Declarations], observed: Mapping[Edge, int]
    ) -> DependencyMap:
        """Merge declarations (several instances of one service add up) and observations."""
        merged: dict[str, Declarations] = {}
        for each in declarations:
            before = merged.get(each.service)
            merged[each.service] = (
                each
                if before is None
                else Declarations(
                    each.service,
                    before.calls | each.calls,
                    before.publishes | each.publishes,
                    before.consumes | each.consumes,
                )
            )
        return cls(merged, Counter(observed))

    @property
    def declared_edges(self) -> set[Edge]:
        """Every declared edge."""
        return {edge for each in self.declared.values() for edge in each.edges()}

    @property
    def edges(self) -> list[Edge]:
        """Every edge, declared or observed, sorted."""
        return sorted(self.declared_edges | set(self.observed))

    @property
    def services(self) -> list[str]:
        """Every service on the map."""
        names = set(self.declared)
        for edge in self.edges:
            if edge.kind == "calls":
                names |= {edge.source, edge.target}
            else:
                names.add(edge.service)
        return sorted(names)

    @property
    def events(self) -> list[str]:
        """Every event type on the map."""
        return sorted(
            {e.target for e in self.edges if e.kind == "publishes"}
            | {e.source for e in self.edges if e.kind == "consumes"}
        )

    def undeclared(self) -> list[Edge]:
        """Observed edges their (declaring) service did not declare."""
        declared = self.declared_edges
        return sorted(e for e in self.observed if e.service in self.declared and e not in declared)

    def unused(self) -> list[Edge]:
        """Declared edges never observed."""
        return sorted(e for e in self.declared_edges if not self.observed.get(e))

    def state(self, edge: Edge) -> Literal["ok", "undeclared", "unused", "observed"]:
        """How an edge stands: both declared and seen, only one of them, or unjudged."""
        declared = edge in self.declared_edges
        seen = bool(self.observed.get(edge))
        if declared and seen:
            return "ok"
        if declared:
            return "unused"
        return "undeclared" if edge.service in self.declared else "observed"

    # -- rendering ---------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The map as JSON-ready data."""
        return {
            "services": self.services,
            "events": self.events,
            "edges": [
                {
                    "kind": e.kind,
                    "source": e.source,
                    "target": e.target,
                    "declared": e in self.declared_edges,
                    "observed": self.observed.get(e, 0),
                    "state": self.state(e),
                }
                for e in self.edges
            ],
            "drift": {
                "undeclared": [_edge_json(e) for e in self.undeclared()],
                "unused": [_edge_json(e) for e in self.unused()],
            },
        }

    def to_mermaid(self) -> str:
        """A Mermaid flowchart: services as boxes, event types as hexagons."""
        lines = ["flowchart LR"]
        for name in self.services:
            lines.append(f'    {_node_id("svc", name)}["{_label(name)}"]')
        for name in self.events:
            lines.append(f'    {_node_id("evt", name)}{{{{"{_label(name)}"}}}}')
        for edge in self.edges:
            source, target = _endpoints(edge)
            state = self.state(edge)
            label = edge.kind if state in ("ok", "observed") else f"{edge.kind}: {state}"
            arrow = "-->" if state in ("ok", "observed") else "-.->"
            lines.append(f'    {source} {arrow}|"{label}"| {target}')
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """A Graphviz DOT digraph (drift drawn dashed, in red)."""
        lines = ["digraph lms {", "    rankdir=LR;", "    node [fontname=Helvetica];"]
        for name in self.services:
            lines.append(f"    {_dot_id('svc', name)} [label={_dot_str(name)}, shape=box];")
        for name in self.events:
            lines.append(f"    {_dot_id('evt', name)} [label={_dot_str(name)}, shape=hexagon];")
        for edge in self.edges:
            source, target = (
                (_dot_id("evt", edge.source), _dot_id("svc", edge.target))
                if edge.kind == "consumes"
                else (
                    _dot_id("svc", edge.source),
                    _dot_id("evt" if edge.kind == "publishes" else "svc", edge.target),
                )
            )
            state = self.state(edge)
            style = "" if state in ("ok", "observed") else ", style=dashed, color=red"
            label = edge.kind if state in ("ok", "observed") else f"{edge.kind} ({state})"
            lines.append(f"    {source} -> {target} [label={_dot_str(label)}{style}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_text(self) -> list[str]:
        """One line per edge, then the drift, for a terminal."""
        width = max((len(e.source) for e in self.edges), default=0)
        out = []
        for edge in self.edges:
            count = self.observed.get(edge, 0)
            note = {"ok": "", "observed": "", "undeclared": "  [undeclared]"}.get(
                self.state(edge), "  [declared, never seen]"
            )
            seen = f"  ({count}x)" if count else ""
            out.append(f"{edge.source:<{width}}  {edge.kind:<9} {edge.target}{seen}{note}")
        return out


def _edge_json(edge: Edge) -> dict[str, str]:
    return {"kind": edge.kind, "source": edge.source, "target": edge.target}


def _endpoints(edge: Edge) -> tuple[str, str]:
    if edge.kind == "calls":
        return _node_id("svc", edge.source), _node_id("svc", edge.target)
    if edge.kind == "publishes":
        return _node_id("svc", edge.source), _node_id("evt", edge.target)
    return _node_id("evt", edge.source), _node_id("svc", edge.target)


_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def _node_id(prefix: str, name: str) -> str:
    # sanitised for Mermaid, with a stable digest so "a.b" and "a_b" stay apart
    return f"{prefix}_{_UNSAFE.sub('_', name)}_{zlib.crc32(name.encode()) % 10_000:04d}"


def _dot_id(prefix: str, name: str) -> str:
    return _dot_str(f"{prefix}:{name}")


def _label(name: str) -> str:
    return name.replace('"', "#quot;")


def _dot_str(text: str) -> str:
    return json.dumps(text)  # a DOT quoted string: backslash and quote escaped
