"""Sparse fieldsets: ``?fields=id,title`` returns only the fields asked for.

Which fields may be asked for is an allowlist (by default every field of the
model); a name outside it is a 400 problem naming it, never silently
dropped. Built once per route, used as a FastAPI dependency::

    course_fields = SparseFields(Course, always={"id"})

    @v1.get("/courses/{course_id}")
    async def read(course_id: UUID, fields: FieldSet = Depends(course_fields)) -> Response:
        return fields.response(await load(course_id))

Only top-level fields are selected; a nested model is returned whole.
"""

# no "from __future__ import annotations": FastAPI reads __call__'s annotations at runtime

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

import orjson
from fastapi import Query
from pydantic import BaseModel
from starlette.responses import Response

from lms_shared.models._errors import UnknownFields

__all__ = ["FieldSet", "SparseFields"]

MAX_FIELDS_LENGTH: Final = 1_000


@dataclass(frozen=True, slots=True)
class FieldSet:
    """The fields one request asked for; ``names`` is ``None`` for all of them."""

    names: frozenset[str] | None = None

    def apply(self, model: BaseModel) -> dict[str, Any]:
        """The model as JSON-ready data, with only the selected fields."""
        return model.model_dump(mode="json", include=set(self.names) if self.names else None)

    def apply_many(self, models: Iterable[BaseModel]) -> list[dict[str, Any]]:
        """:meth:`apply` for each model."""
        return [self.apply(model) for model in models]

    def response(
        self, content: BaseModel | Sequence[BaseModel], *, status_code: int = 200
    ) -> Response:
        """A JSON response of a model or a list of models, with the selected fields."""
        single = isinstance(content, BaseModel)
        data = self.apply(content) if single else self.apply_many(content)  # type: ignore[arg-type]
        return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


class SparseFields:
    """The ``?fields=`` query parameter of one resource type, as a dependency.

    Args:
        model: the resource's Read model.
        allowed: the fields a client may ask for; every field by default.
        always: fields returned whatever was asked (``{"id"}``).

    Raises:
        ValueError: ``allowed`` or ``always`` names a field the model lacks.
    """

    def __init__(
        self,
        model: type[BaseModel],
        *,
        allowed: Iterable[str] | None = None,
        always: Iterable[str] = (),
    ) -> None:
        fields = set(model.model_fields)
        self.allowed = frozenset(fields if allowed is None else allowed)
        self.always = frozenset(always)
        missing = (self.allowed | self.always) - fields
        if missing:
            raise ValueError(f"{model.__name__} has no field(s) {sorted(missing)}")
        self.model = model

    def parse(self, raw: str | None) -> FieldSet:
        """The field set of a ``fields`` parameter value (absent or empty: all fields).

        Raises:
            UnknownFields: a name is not in the allowlist (400, names it).
        """
        names = [name.strip() for name in (raw or "").split(",") if name.strip()]
        if not names:
            return FieldSet(None)
        unknown = [name for name in dict.fromkeys(names) if name not in self.allowed]
        if unknown:
            raise UnknownFields(unknown, sorted(self.allowed))
        return FieldSet(frozenset(names) | self.always)

    def __call__(
        self,
        fields: Annotated[
            str | None,
            Query(
                max_length=MAX_FIELDS_LENGTH,
                description="comma-separated fields to return (all by default)",
                examples=["id,title"],
            ),
        ] = None,
    ) -> FieldSet:
        """FastAPI dependency: the validated ``?fields=`` of the request."""
        return self.parse(fields)
