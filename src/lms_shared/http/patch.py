"""The merge-patch request body (RFC 7396) as a route parameter type.

The merge itself is data work (:func:`lms_shared.models.apply_merge_patch`);
this module tells FastAPI and OpenAPI that the body is
``application/merge-patch+json`` and that it is a JSON object.

RFC 7396 lets a patch that is not an object (an array, a string, a number,
``null``) replace the whole target. Our resources are objects that are never
replaced wholesale by PATCH, so such a body is refused before the route runs:
400 ``malformed-patch`` (as a patch nested deeper than 32 levels is), and
the route's parameter is a ``dict[str, JsonValue]``, so code that inspects
the patch before applying it (``if "owner_id" in patch``) type-checks and
cannot fail on a non-object.
"""

from typing import Annotated

from fastapi import Body
from pydantic import BeforeValidator, JsonValue

from lms_shared.models import MERGE_PATCH_CONTENT_TYPE, MalformedPatch, parse_merge_patch

__all__ = ["MergePatch"]


def _json_object(value: object) -> dict[str, JsonValue]:
    # the body is already decoded: a str is a JSON string, not text to parse
    if isinstance(value, str):
        raise MalformedPatch("a merge patch must be a JSON object, got a string")
    return parse_merge_patch(value)


MergePatch = Annotated[
    dict[str, JsonValue],
    BeforeValidator(_json_object),
    Body(
        media_type=MERGE_PATCH_CONTENT_TYPE,
        description="a JSON Merge Patch (RFC 7396), a JSON object: members set fields, "
        "null removes them",
        examples=[{"title": "Statistics I", "summary": None}],
    ),
]
"""A route parameter taking the request body as a merge patch: a JSON object.

Any other JSON value (array, string, number, boolean, ``null``), or one
nested deeper than 32 levels, is a 400 ``malformed-patch`` problem raised
before the route runs.
"""
