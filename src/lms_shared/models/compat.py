"""Compatibility of two JSON Schema exports: what would break, in which direction.

* **Backward** compatible: a reader with the *new* schema accepts
  everything the *old* one accepted (old stored data, old clients). Broken
  by narrowing: a field removed where unknown fields are refused, a new
  required field, a type changed or narrowed, an enum value removed, a
  bound tightened, a pattern changed.
* **Forward** compatible: a reader with the *old* schema accepts what the
  *new* one allows (a not-yet-upgraded consumer reading new data). Broken by
  widening: a field added where unknown fields are refused, a required
  field removed or made optional, a type widened, an enum value added, a
  bound relaxed.

Both are one check, "what does B refuse that A accepts", run both ways on
the resolved schemas. A change in a schema whose version was bumped is
reported but allowed: the bump announces it, and an upcaster carries old
payloads over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["SchemaChange", "compare_exports", "compare_schemas", "read_export"]

Direction = Literal["backward", "forward"]
_UPPER = ("maxLength", "maxItems", "maximum", "exclusiveMaximum")
_LOWER = ("minLength", "minItems", "minimum", "exclusiveMinimum")


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One incompatibility between two versions of a schema.

    Attributes:
        schema: the schema name.
        direction: ``backward`` or ``forward``.
        path: where (``modules[].lessons[].title``; ``(root)`` for the object).
        message: what changed.
        allowed: the schema's version was bumped, so the change is announced.
    """

    schema: str
    direction: Direction
    path: str
    message: str
    allowed: bool = False


def read_export(directory: Path) -> dict[str, dict[str, Any]]:
    """The schemas of an export directory by name (``x-schema-name``).

    Raises:
        ValueError: the directory does not exist, or a file is not a schema export.
    """
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    schemas = {}
    for path in sorted(directory.glob("*.json")):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not readable JSON ({exc})") from None
        if not isinstance(schema, dict) or "x-schema-name" not in schema:
            raise ValueError(f"{path}: not a schema export (no x-schema-name)")
        schemas[str(schema["x-schema-name"])] = schema
    return schemas


def compare_exports(
    old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]
) -> list[SchemaChange]:
    """Every backward and forward incompatibility between two exports."""
    changes = []
    for name in sorted(old):
        if name not in new:
            for direction in ("backward", "forward"):
                changes.append(SchemaChange(name, direction, "(root)", "schema removed"))
            continue
        bumped = int(new[name].get("x-schema-version", 1)) > int(
            old[name].get("x-schema-version", 1)
        )
        for direction, path, message in compare_schemas(old[name], new[name]):
            changes.append(SchemaChange(name, direction, path, message, allowed=bumped))
    return changes


def compare_schemas(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[Direction, str, str]]:
    """``(direction, path, message)`` for each incompatibility of two root schemas."""
    backward = _Walk(old, new, backward=True).losses(old, new, "")
    forward = _Walk(new, old, backward=False).losses(new, old, "")
    return [("backward", p, m) for p, m in backward] + [("forward", p, m) for p, m in forward]


class _Walk:
    """Finds what schema ``b`` refuses that schema ``a`` accepts."""

    def __init__(self, root_a: dict[str, Any], root_b: dict[str, Any], *, backward: bool) -> None:
        self.roots = (root_a, root_b)
        self.backward = backward
        self.seen: set[tuple[str, str]] = set()

    def losses(self, a: Any, b: Any, path: str) -> list[tuple[str, str]]:
        if not isinstance(a, dict) or not isinstance(b, dict):
            return []  # boolean schemas (true/false): nothing to compare
        ref = (str(a.get("$ref")), str(b.get("$ref")))
        if "$ref" not in a or "$ref" not in b:
            return self._compare(a, b, path)
        if ref in self.seen:  # a recursive model: this pair is already being compared
            return []
        self.seen.add(ref)
        try:
            return self._compare(a, b, path)
        finally:
            self.seen.discard(ref)

    def _compare(self, a: dict[str, Any], b: dict[str, Any], path: str) -> list[tuple[str, str]]:
        alts_a = self._alternatives(a, 0)
        alts_b = self._alternatives(b, 1)
        if any(_kind(alt) == "any" for alt in alts_b):
            return []
        out: list[tuple[str, str]] = []
        for alt in alts_a:
            kind = _kind(alt)
            matches = [x for x in alts_b if _fits(kind, _kind(x))]
            if not matches:
                accepted = ", ".join(sorted({_kind(x) for x in alts_b}))
                out.append((_where(path), self._say(f"type {kind}", f"only {accepted}")))
                continue
            candidates = [self._same_kind(alt, x, path) for x in matches]
            best: list[tuple[str, str]] = min(candidates, key=len)
            out.extend(best)
        return out

    def _say(self, accepted: str, instead: str) -> str:
        if self.backward:
            return f"{accepted} no longer accepted (new: {instead})"
        return f"{accepted} added (old readers accept {instead})"

    def _resolve(self, schema: dict[str, Any], side: int) -> dict[str, Any]:
        for _ in range(32):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
                return schema
            target = self.roots[side].get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def _alternatives(self, schema: dict[str, Any], side: int) -> list[dict[str, Any]]:
        schema = self._resolve(schema, side)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return [alt for sub in schema[key] for alt in self._alternatives(sub, side)]
        if isinstance(schema.get("type"), list):
            return [{**schema, "type": t} for t in schema["type"]]
        return [schema]

    def _same_kind(self, a: dict[str, Any], b: dict[str, Any], path: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        where = _where(path)
        values_a, values_b = _values(a), _values(b)
        if values_b is not None:
            lost = [v for v in (values_a or []) if v not in values_b]
            if values_a is None:
                out.append((where, self._say("any value", f"one of {values_b}")))
            elif lost:
                label = "enum value(s) removed" if self.backward else "enum value(s) added"
                out.append((where, f"{label}: {', '.join(map(str, lost))}"))
        for key in _UPPER:
            if key in b and (key not in a or b[key] < a[key]):
                out.append((where, self._bound(key, a.get(key), b[key])))
        for key in _LOWER:
            if key in b and (key not in a or b[key] > a[key]):
                out.append((where, self._bound(key, a.get(key), b[key])))
        for key in ("pattern", "format"):
            if key in b and a.get(key) != b[key]:
                out.append((where, f"{key} changed: {a.get(key)!r} -> {b[key]!r}"))
        if "items" in a and "items" in b:
            out.extend(self.losses(a["items"], b["items"], f"{path}[]"))
        if _kind(a) == "object":
            out.extend(self._object(a, b, path))
        return out

    def _bound(self, key: str, a_value: Any, b_value: Any) -> str:
        old, new = (a_value, b_value) if self.backward else (b_value, a_value)
        change = "narrowed" if self.backward else "widened"
        return f"{key} {change} (old {_show(old)}, new {_show(new)})"

    def _object(self, a: dict[str, Any], b: dict[str, Any], path: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        props_a, props_b = a.get("properties", {}), b.get("properties", {})
        required_a, required_b = set(a.get("required", [])), set(b.get("required", []))
        closed_a = a.get("additionalProperties", True) is False
        closed_b = b.get("additionalProperties", True) is False
        for name in sorted(required_b - required_a):
            where = _where(_join(path, name))
            if self.backward:
                known = "field became required" if name in props_a else "new required field"
                out.append((where, known))
            else:
                gone = (
                    "required field made optional" if name in props_a else "required field removed"
                )
                out.append((where, f"{gone} (old readers require it)"))
        for name in sorted(set(props_a) - set(props_b)):
            if closed_b:
                where = _where(_join(path, name))
                if self.backward:
                    out.append((where, "field removed (new refuses unknown fields)"))
                else:
                    out.append((where, "field added (old readers refuse unknown fields)"))
        if closed_b and not closed_a:
            out.append((_where(path), self._say("unknown fields", "declared fields")))
        for name in sorted(set(props_a) & set(props_b)):
            out.extend(self.losses(props_a[name], props_b[name], _join(path, name)))
        return out


def _kind(schema: dict[str, Any]) -> str:
    if "type" in schema:
        return str(schema["type"])
    values = _values(schema)
    if values:
        return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
            type(values[0]), "null" if values[0] is None else "any"
        )
    return "object" if "properties" in schema else "any"


def _fits(kind_a: str, kind_b: str) -> bool:
    return kind_b in (kind_a, "any") or (kind_a, kind_b) == ("integer", "number")


def _values(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _where(path: str) -> str:
    return path or "(root)"


def _show(value: Any) -> str:
    return "none" if value is None else str(value)
