"""PATCH with JSON Merge Patch (RFC 7396), validated against the DTOs.

A merge patch is a JSON object: a member sets a field, ``null`` removes it
(sets it to its default), nested objects merge, arrays are replaced whole.
The patch is checked against the resource's Update model (so unknown or
read-only fields, and wrong types, are refused with a pointer to them) and
the merged document against the Read model (so required fields cannot be
removed and cross-field rules still hold)::

    @v1.patch("/courses/{course_id}", response_model=Course)
    async def patch_course(course_id: UUID, patch: MergePatch, ...) -> Course:
        current = await load(course_id)
        changed = apply_merge_patch(current, patch, CourseUpdate)
        ...

Errors: :class:`~lms_shared.models.MalformedPatch` (400) when the patch is
not JSON or not an object, :class:`~lms_shared.models.ModelValidationError`
(422) when it does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

import orjson
from pydantic import BaseModel, JsonValue, ValidationError

from lms_shared.jsonlimits import JsonLimitError, check_depth
from lms_shared.models._errors import MalformedPatch
from lms_shared.models._validation import problem_from

__all__ = [
    "MERGE_PATCH_CONTENT_TYPE",
    "apply_merge_patch",
    "apply_update",
    "merge_patch",
    "parse_merge_patch",
]

R = TypeVar("R", bound=BaseModel)

MERGE_PATCH_CONTENT_TYPE: Final = "application/merge-patch+json"

_MAX_DEPTH: Final = 32


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply ``patch`` to ``target`` as RFC 7396 section 2 defines (pure JSON values).

    Neither argument is modified; the result shares no dicts with them.
    """
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def parse_merge_patch(patch: object) -> dict[str, JsonValue]:
    """The patch as a JSON object: bytes and text are parsed, a dict is taken as is.

    A patch that is not an object is refused rather than applied as RFC 7396
    allows (replacing the whole target): a resource is never replaced by PATCH.

    Raises:
        MalformedPatch: not JSON, nested too deep, or not a JSON object (400).
    """
    if isinstance(patch, bytes | bytearray | memoryview | str):
        try:
            patch = orjson.loads(patch)
        except orjson.JSONDecodeError as exc:
            raise MalformedPatch(f"the merge patch is not valid JSON: {exc}") from None
    if not isinstance(patch, Mapping):
        kind = "null" if patch is None else type(patch).__name__
        raise MalformedPatch(f"a merge patch must be a JSON object, got {_json_kind(kind)}")
    try:
        check_depth(patch, _MAX_DEPTH)
    except JsonLimitError:
        raise MalformedPatch(f"the merge patch is nested deeper than {_MAX_DEPTH} levels") from None
    return dict(patch)


def apply_merge_patch(current: R, patch: Any, update_model: type[BaseModel]) -> R:
    """``current`` with a merge patch applied, validated.

    Args:
        current: the resource as stored (a Read model).
        patch: the merge patch (JSON bytes or text, or the parsed object).
        update_model: the resource's Update model: the fields a client may
            change and their types.

    Returns:
        A new model of ``current``'s type; ``current`` is not changed.

    Raises:
        MalformedPatch: the patch is not a JSON object (400).
        ModelValidationError: the patch names fields the Update model does
            not have, has wrong values, or leaves an invalid resource (422).
    """
    document = parse_merge_patch(patch)
    try:
        # merge what the Update model produced, not the raw document: its
        # transforming types (SafeHtml, CleanLine, trimmed text, ...) must
        # apply on PATCH exactly as on POST; exclude_unset keeps the patch's
        # shape (absent members stay absent, explicit nulls stay null)
        validated = update_model.model_validate(document)
        produced = validated.model_dump(mode="json", exclude_unset=True)
        merged = merge_patch(current.model_dump(mode="json"), produced)
        return type(current).model_validate(merged)
    except ValidationError as exc:
        raise problem_from(exc) from None


def apply_update(current: R, update: BaseModel) -> R:
    """``current`` with the fields the client sent in an Update DTO applied.

    Only fields set in the request count (``exclude_unset``), so an absent
    field stays as it is and an explicit ``null`` clears it.

    Raises:
        ModelValidationError: the result is not a valid resource (422).
    """
    changes = update.model_dump(mode="json", exclude_unset=True)
    merged = {**current.model_dump(mode="json"), **changes}
    try:
        return type(current).model_validate(merged)
    except ValidationError as exc:
        raise problem_from(exc) from None


def _json_kind(python_kind: str) -> str:
    return {
        "list": "an array",
        "str": "a string",
        "int": "a number",
        "float": "a number",
        "bool": "a boolean",
    }.get(python_kind, python_kind)
