"""Hypothesis strategies for the shared DTOs, derived from their JSON Schemas.

Each strategy draws a JSON document from the model's own schema (formats,
patterns, bounds, enums, nullable and optional fields), validates it into
the model and keeps the valid ones; nested models come from their own
strategies, so cross-field rules are filtered level by level.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from lms_shared.models import shared_schemas

MAX_TEXT = 24
MAX_ITEMS = 3
_ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
_EMAIL = r"\A[a-z0-9]{1,10}(\.[a-z0-9]{1,5})?@[a-z0-9]{1,10}\.(org|edu|com)\Z"
_URL = r"\Ahttps://[a-z0-9]{1,12}\.(org|com)(/[a-z0-9_-]{1,8}){0,3}\Z"


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for entry in shared_schemas():
        found[entry.model.__name__] = entry.model
    return found


MODELS = _models()


@cache
def strategy_for(model: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    """Valid instances of ``model``, drawn from its JSON Schema."""
    schema = model.model_json_schema(mode="validation")
    documents = _from_schema(schema, schema.get("$defs", {}))

    def valid(document: Any) -> BaseModel | None:
        try:
            return model.model_validate(document)
        except ValidationError:
            return None

    return documents.map(valid).filter(lambda value: value is not None)  # type: ignore[return-value]


def _from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in MODELS:
            return strategy_for(MODELS[name]).map(lambda m: m.model_dump(mode="json"))
        return _from_schema(
            {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}, defs
        )
    if "anyOf" in schema:
        return st.one_of([_from_schema(alt, defs) for alt in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**31) - 1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", 2**31) - 1)
        return st.integers(low, high)
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum", schema.get("exclusiveMinimum")),
            max_value=schema.get("maximum", schema.get("exclusiveMaximum")),
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(
            _from_schema(schema["items"], defs),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", MAX_ITEMS), MAX_ITEMS),
        )
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: _from_schema(v, defs) for k, v in properties.items() if k in required},
            optional={k: _from_schema(v, defs) for k, v in properties.items() if k not in required},
        )
    raise NotImplementedError(f"no strategy for schema {schema}")


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    form = schema.get("format")
    if form == "date-time":
        return st.datetimes(
            min_value=datetime(1900, 1, 1),
            max_value=datetime(2200, 1, 1),
            timezones=st.sampled_from(_ZONES),
        ).map(datetime.isoformat)
    if form == "date":
        return st.dates().map(lambda d: d.isoformat())
    if form == "uuid":
        return st.uuids().map(str)
    if form == "email":
        return st.from_regex(_EMAIL)
    if form == "uri":
        return st.from_regex(_URL)
    low = schema.get("minLength", 0)
    high = min(schema.get("maxLength", MAX_TEXT), MAX_TEXT)
    if "pattern" in schema and not schema["pattern"].startswith("^[^"):
        return st.from_regex(schema["pattern"], fullmatch=True).filter(
            lambda s: low <= len(s) <= high
        )
    alphabet = st.characters(exclude_categories=("Cs", "Cc"))
    return st.text(alphabet, min_size=low, max_size=high)
