"""Personal data, marked in the schema and redacted wherever operators see data.

An LMS holds student records, so a field that is personal data says so
where it is declared, and the platform never writes its value for
operators (logs, span attributes, dead letters, exports)::

    class User(LmsRecord, schema_name="lms.user"):
        email: Annotated[Email, Personal()]
        given_name: Annotated[Name, Personal()]

:func:`for_operators` turns a model into a JSON-ready dict with those values
replaced by :data:`MASK`; :func:`redact` does the same for any value
(models inside dicts and lists, plus dict keys that are personal by name,
:data:`PII_KEYS`); :func:`redact_personal_data` is the structlog
processor the logging configuration runs on every line. The marker also
shows in JSON Schema and OpenAPI as ``"x-personal-data": true``.

What is *not* covered: free text an author formats into the event message
itself (``log.info(f"user {email}")``); pass values as keys instead.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Annotated, Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, to_jsonable_python
from structlog.typing import EventDict, WrappedLogger

from lms_shared.redaction._keys import MASK, PII_KEYS, SECRET_KEYS

__all__ = [
    "Personal",
    "for_operators",
    "is_personal",
    "personal_fields",
    "redact",
    "redact_personal_data",
]

_MAX_DEPTH: Final = 12
_KEYS: Final = PII_KEYS | SECRET_KEYS  # a secret under a plain key is hidden too
_LOG_INTERNAL: Final = frozenset({"exc_info", "stack_info", "positional_args"})
_SCHEMA_FLAG: Final = "x-personal-data"


@dataclass(frozen=True, slots=True)
class Personal:
    """Annotated metadata: this field is personal data.

    Put it on the field's annotation: ``email: Annotated[Email, Personal()]``;
    an optional field may be ``Annotated[Email, Personal()] | None``.

    Attributes:
        category: what kind of personal data (``contact``, ``identity``,
            ``education``); shown in JSON Schema for privacy reviews.
    """

    category: str = "personal"

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema[_SCHEMA_FLAG] = True
        schema["x-personal-category"] = self.category
        return schema


@cache
def personal_fields(model: type[BaseModel]) -> frozenset[str]:
    """The names of ``model``'s fields marked :class:`Personal`.

    A field also counts when its ``json_schema_extra`` has
    ``"x-personal-data": True``.
    """
    names = set()
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if (
            any(isinstance(m, Personal) for m in field.metadata)
            or _marked(field.annotation)
            or (isinstance(extra, Mapping) and extra.get(_SCHEMA_FLAG) is True)
        ):
            names.add(name)
    return frozenset(names)


def _marked(annotation: Any) -> bool:
    """Whether a union member is ``Annotated[..., Personal()]`` (``_Email | None``)."""
    if get_origin(annotation) is Annotated:
        return any(isinstance(m, Personal) for m in get_args(annotation)[1:])
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_marked(arg) for arg in get_args(annotation))
    return False


def is_personal(model: type[BaseModel], field: str) -> bool:
    """Whether ``model.field`` is marked as personal data."""
    return field in personal_fields(model)


def for_operators(model: BaseModel) -> dict[str, Any]:
    """A JSON-ready dict of ``model`` with every personal value redacted.

    Nested models, lists and dicts are redacted too. ``None`` stays
    ``None`` (it reveals nothing). Use it for anything an operator may see:
    log lines, span attributes, dead letters, exports.
    """
    return _model(model, 0)


def redact(value: Any) -> Any:
    """``value`` made safe for operators, as JSON-ready data.

    Models are redacted by their :class:`Personal` markers, dict entries
    whose key is in :data:`PII_KEYS` are redacted, lists and tuples are
    redacted item by item; other values are returned unchanged.
    """
    return _value(value, 0)


def redact_personal_data(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact models and personal keys in every log line."""
    for key, value in event_dict.items():
        if key in _LOG_INTERNAL or key.startswith("_"):
            continue
        if key in _KEYS and value is not None:
            event_dict[key] = MASK
        elif isinstance(value, BaseModel | Mapping | list | tuple):
            event_dict[key] = _value(value, 0)
    return event_dict


def _model(model: BaseModel, depth: int) -> dict[str, Any]:
    hidden = personal_fields(type(model))
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name in hidden and value is not None:
            out[name] = MASK
        else:
            out[name] = _value(value, depth + 1)
    return out


def _value(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return MASK
    if isinstance(value, BaseModel):
        return _model(value, depth)
    if isinstance(value, Mapping):
        return {
            key: MASK if key in _KEYS and item is not None else _value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_value(item, depth + 1) for item in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return to_jsonable_python(value, fallback=str)
