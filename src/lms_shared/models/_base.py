"""The two model bases: one house style for every DTO of the platform.

* :class:`LmsModel` is for data a service *receives* (Create and Update
  bodies, commands): unknown fields are refused.
* :class:`LmsRecord` is for data a service *returns* (Read models): unknown
  fields are ignored, so a client built against version N still reads what
  a server at N+1 answers (the tolerant reader of the versioning strategy).

Both: field names are snake_case and are the JSON names; models are frozen
(``model_copy(update=...)`` makes a changed copy); every string is at most
:data:`DEFAULT_MAX_LENGTH` characters and every collection field at most
:data:`DEFAULT_MAX_ITEMS` items unless the field sets its own bound;
datetimes must be :data:`~lms_shared.models.UtcDatetime` (a class with a
plain ``datetime`` field is refused when it is defined). A model names its
schema with class keywords::

    class CourseCreate(LmsModel, schema_name="lms.course.create", schema_version=1):
        title: Title

The schema name and version also appear in its JSON Schema
(``x-schema-name``, ``x-schema-version``) and so in OpenAPI.
"""

from __future__ import annotations

import re
import types
from datetime import datetime
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin
from uuid import UUID

from annotated_types import MaxLen
from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from lms_shared.models._types import (
    _UTC_VALIDATOR,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_LENGTH,
    UtcDatetime,
)

__all__ = ["DEFAULT_MAX_ITEMS", "DEFAULT_MAX_LENGTH", "LmsModel", "LmsRecord", "Resource"]

_SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_-]*)+$")
_COLLECTIONS = (list, set, frozenset, tuple, dict)


class LmsModel(BaseModel):
    """Base of the platform's input DTOs: strict about shape, bounded in size.

    Class keywords:
        schema_name: dotted, lower-case name of the schema (``lms.course.create``).
        schema_version: its version, from 1; bump it on a breaking change and
            register an upcaster (see :class:`~lms_shared.models.SchemaRegistry`).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_max_length=DEFAULT_MAX_LENGTH,
        validate_default=False,
        use_attribute_docstrings=True,
    )

    schema_name: ClassVar[str | None] = None
    schema_version: ClassVar[int | None] = None

    def __init_subclass__(
        cls,
        *,
        schema_name: str | None = None,
        schema_version: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if schema_version is not None and schema_name is None:
            raise TypeError(f"{cls.__name__}: schema_version= needs schema_name=")
        if schema_name is not None and not _SCHEMA_NAME.match(schema_name):
            raise TypeError(
                f"{cls.__name__}: schema_name {schema_name!r} must be dotted lower-case "
                "words, e.g. 'lms.course.create'"
            )
        if schema_version is not None and schema_version < 1:
            raise TypeError(f"{cls.__name__}: schema_version starts at 1")
        # each class declares its own schema; a subclass does not inherit it
        cls.schema_name = schema_name
        cls.schema_version = (schema_version or 1) if schema_name else None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        bounded = False
        for name, field in cls.model_fields.items():
            if not _SNAKE.match(name):
                raise TypeError(f"{cls.__name__}.{name}: field names are snake_case")
            if _has_plain_datetime(field.annotation, field.metadata):
                raise TypeError(
                    f"{cls.__name__}.{name}: use UtcDatetime instead of datetime "
                    "(naive datetimes are refused platform-wide)"
                )
            if _is_collection(field.annotation) and not _has_max_len(field.metadata):
                field.metadata.append(MaxLen(DEFAULT_MAX_ITEMS))
                bounded = True
        if bounded:  # apply the default bounds the fields forgot
            cls.model_rebuild(force=True, raise_errors=False)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.schema_name is not None:
            target = handler.resolve_ref_schema(schema)
            target["x-schema-name"] = cls.schema_name
            target["x-schema-version"] = cls.schema_version
        return schema


class LmsRecord(LmsModel):
    """Base of the platform's read DTOs: what a service returns.

    Unknown fields are ignored (a newer server may add fields), and a record
    validates from any object with attributes (an ORM instance, a SQLAlchemy
    ``Row``) as well as from a dict: see :func:`~lms_shared.models.from_row`.
    """

    model_config = ConfigDict(extra="ignore", from_attributes=True)


def _has_plain_datetime(annotation: Any, metadata: Any) -> bool:
    """Whether ``annotation`` holds a ``datetime`` without the UTC validator."""
    if annotation is datetime:
        return not any(m is _UTC_VALIDATOR for m in metadata)
    if get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        return _has_plain_datetime(base, extra)
    return any(
        _has_plain_datetime(arg, ()) for arg in get_args(annotation) if not isinstance(arg, str)
    )


def _is_collection(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in _COLLECTIONS or annotation in _COLLECTIONS:
        return True
    if origin in (Union, types.UnionType):
        return any(_is_collection(arg) for arg in get_args(annotation))
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return not _has_max_len(extra) and _is_collection(base)
    return False


def _has_max_len(metadata: Any) -> bool:
    for item in metadata:
        if isinstance(item, MaxLen):
            return True
        if isinstance(item, FieldInfo) and _has_max_len(item.metadata):
            return True
    return False


class Resource(LmsRecord):
    """A stored resource: its id, its version (optimistic concurrency) and timestamps.

    ``version`` starts at 1 and grows by one on every write; it is the
    resource's ``ETag`` and what ``If-Match`` is checked against.
    """

    id: UUID = Field(description="stable identifier")
    version: int = Field(ge=1, le=2**31 - 1, description="grows by one on every write")
    created_at: UtcDatetime = Field(description="when it was created (UTC)")
    updated_at: UtcDatetime = Field(description="when it last changed (UTC)")
