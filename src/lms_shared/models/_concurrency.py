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

:func:`versioned_update` makes the check atomic in the database
(``UPDATE ... WHERE version = :expected``), so two writers that both passed
``If-Match`` cannot both win.
"""

# no "from __future__ import annotations": FastAPI reads __call__'s annotations at runtime

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.responses import Response

from lms_shared.errors import NotFound
from lms_shared.models._errors import PreconditionRequired, StaleVersion

__all__ = [
    "IfMatch",
    "Precondition",
    "check_if_match",
    "etag",
    "parse_etags",
    "set_etag",
    "versioned_update",
]


def etag(version: int) -> str:
    """The strong ETag of a resource version: ``"7"``."""
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    """Set the ``ETag`` header of a response to ``version``'s tag."""
    response.headers["ETag"] = etag(version)


def parse_etags(header: str) -> list[str] | None:
    """The entity tags of an ``If-Match`` value; ``None`` for ``*``.

    Weak tags (``W/"7"``) are kept with their prefix: ``If-Match`` compares
    strongly, so they never match (RFC 9110 section 13.1.1).
    """
    if header.strip() == "*":
        return None
    tags = []
    for part in header.split(","):
        tag = part.strip()
        if tag:
            tags.append(tag)
    return tags


def check_if_match(if_match: str | None, version: int, *, required: bool = True) -> None:
    """Check an ``If-Match`` header against the resource's current version.

    Args:
        if_match: the header's value, ``None`` when absent.
        version: the resource's current version.
        required: refuse a missing header (428) instead of allowing the write.

    Raises:
        PreconditionRequired: no ``If-Match`` and one is required (428).
        StaleVersion: no tag matches the current version (412, with the
            current ``ETag``).
    """
    if if_match is None or not if_match.strip():
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


async def versioned_update(
    connection: AsyncConnection | AsyncSession,
    table: Table,
    key: Mapping[str, Any],
    expected_version: int,
    values: Mapping[str, Any],
    *,
    version_column: str = "version",
) -> int:
    """``UPDATE`` one row only if it is still at ``expected_version``; bump its version.

    Args:
        connection: a connection or session inside the caller's transaction.
        table: the resource's table.
        key: primary-key column values (``{"id": course_id}``).
        expected_version: the version the change was based on.
        values: the new column values (``version`` is set here).
        version_column: the name of the version column.

    Returns:
        The new version.

    Raises:
        StaleVersion: the row is at another version (412).
        NotFound: there is no such row (404).
    """
    where = [table.c[name] == value for name, value in key.items()]
    version = table.c[version_column]
    changes = {k: v for k, v in values.items() if k != version_column}
    statement = (
        update(table)
        .where(*where, version == expected_version)
        .values(**changes, **{version_column: version + 1})
        .returning(version)
    )
    row = (await connection.execute(statement)).first()
    if row is not None:
        return int(row[0])
    current = (await connection.execute(select(version).where(*where))).scalar_one_or_none()
    if current is None:
        where_text = ", ".join(f"{name}={value}" for name, value in key.items())
        raise NotFound(f"no {table.name} row with {where_text}")
    raise StaleVersion(
        f"the resource changed: it is at version {current}, the update was based on "
        f"{expected_version}; read it again and retry",
        current=int(current),
    )
