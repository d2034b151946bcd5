"""Optimistic concurrency: a version per resource, ``ETag`` out, ``If-Match`` in.

Every stored resource has ``version`` (see :class:`~lms_shared.models.Resource`);
its ETag is the quoted version (``"7"``). A client sends it back in
``If-Match`` to update; a write based on an older version is refused with
412, a write without ``If-Match`` where one is required with 428::

    if_match = IfMatch()                              # required by default

    @v1.patch("/courses/{course_id}", response_model=Course)
    async def patch_course(
        course_id: UUID, patch: MergePatch, response: Response,
        precondition: Precondition = Depends(if_match),
    ) -> Course:
        current = await load(course_id)
        precondition.check(current.version)           # 428 / 412 before any work
        changed = apply_merge_patch(current, patch, CourseUpdate)
        version = await versioned_update(conn, courses, {"id": course_id},
                                         current.version, to_values(changed, exclude=...))
        set_etag(response, version)
        ...

:func:`lms_shared.db.versioned_update` makes the check atomic in the database
(``UPDATE ... WHERE version = :expected``), so two writers that both passed
``If-Match`` cannot both win.
"""

# no "from __future__ import annotations": FastAPI reads __call__'s annotations at runtime

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Header
from starlette.responses import Response

from lms_shared.errors import BadRequest
from lms_shared.models._errors import PreconditionRequired, StaleVersion

__all__ = [
    "IfMatch",
    "Precondition",
    "check_if_match",
    "etag",
    "parse_etags",
    "set_etag",
]


def etag(version: int) -> str:
    """The strong ETag of a resource version: ``"7"``."""
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    """Set the ``ETag`` header of a response to ``version``'s tag."""
    response.headers["ETag"] = etag(version)


# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E
_ENTITY_TAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e]*"')
_OWS = " \t"


def parse_etags(header: str) -> list[str] | None:
    """The entity tags of an ``If-Match`` value; ``None`` for ``*``.

    Strict (RFC 9110 §13.1.1): ``*`` alone, or a comma-separated list of
    quoted entity tags (empty list elements are ignored, as the list rule
    asks). Weak tags (``W/"7"``) are kept with their prefix: ``If-Match``
    compares strongly, so they never match.

    Raises:
        BadRequest: anything else (``7`` unquoted, ``*`` among tags, an
            unclosed quote): a 400 naming ``If-Match``, not a 412 that would
            blame a version the client never sent.
    """
    value = header.strip(_OWS)
    if value == "*":
        return None
    tags = []
    # a quoted tag may hold a comma: take tags off the front instead of splitting
    rest = value
    while rest:
        rest = rest.lstrip(_OWS)
        if rest.startswith(","):
            rest = rest[1:]
            continue
        match = _ENTITY_TAG.match(rest)
        if match is None:
            raise BadRequest(
                'If-Match is "*" or entity tags such as "7" (quoted), as the ETag header gave them',
                parameter="If-Match",
            )
        tags.append(match.group())
        rest = rest[match.end() :].lstrip(_OWS)
        if rest and not rest.startswith(","):
            raise BadRequest("If-Match entity tags are separated by commas", parameter="If-Match")
    if not tags:
        raise BadRequest('If-Match names no entity tag; send "*" or "7"', parameter="If-Match")
    return tags


def check_if_match(if_match: str | None, version: int, *, required: bool = True) -> None:
    """Check an ``If-Match`` header against the resource's current version.

    Args:
        if_match: the header's value, ``None`` when absent.
        version: the resource's current version.
        required: refuse a missing header (428) instead of allowing the write.

    Raises:
        BadRequest: the header is not ``*`` or a list of entity tags (400).
        PreconditionRequired: no ``If-Match`` and one is required (428).
        StaleVersion: no tag matches the current version (412, with the
            current ``ETag``).
    """
    if if_match is None or not if_match.strip(_OWS):
        if required:
            raise PreconditionRequired(
                "this update needs an If-Match header with the resource's ETag; "
                "read the resource first"
            )
        return
    tags = parse_etags(if_match)
    if tags is None:  # "*": any current representation
        return
    current = etag(version)
    if current not in tags:
        raise StaleVersion(
            f"the resource changed: If-Match {', '.join(tags)} does not match the "
            f"current ETag {current}; read it again and retry",
            current=version,
        )


@dataclass(frozen=True, slots=True)
class Precondition:
    """The ``If-Match`` of one request, ready to check against a version."""

    if_match: str | None
    required: bool = True

    def check(self, version: int) -> None:
        """See :func:`check_if_match`."""
        check_if_match(self.if_match, version, required=self.required)


class IfMatch:
    """FastAPI dependency: the request's ``If-Match`` as a :class:`Precondition`.

    Args:
        required: whether a missing ``If-Match`` is refused (428).
    """

    def __init__(self, *, required: bool = True) -> None:
        self.required = required

    def __call__(
        self,
        if_match: Annotated[
            str | None,
            Header(
                alias="If-Match",
                max_length=1024,
                description='the ETag of the version this update is based on ("7")',
            ),
        ] = None,
    ) -> Precondition:
        """The request's precondition."""
        return Precondition(if_match, self.required)
