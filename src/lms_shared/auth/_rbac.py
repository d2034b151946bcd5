"""Roles, permissions and the checks: ``can(principal, "grade:write", course=cid)``.

A permission is ``resource:action`` (``course:publish``, ``grade:write``).
A role grants permission *patterns*, where either part may be ``*``
(``lesson:*``, ``*:read``, ``*:*``). The LMS roles and their default grants
are declared here, in code; a service's settings may replace a role's
grants or add roles (``LMS_AUTH_ROLES='{"observer": ["course:read"]}'``).

A principal holds a permission when

1. one of its platform roles, or (for a check about one course) one of its
   roles in that course, grants it, and
2. its scopes, if it has any (API keys, scoped tokens), also cover it, and
3. for a check about one tenant, it belongs to that tenant (or to none:
   platform staff and services).

The same :class:`Policy` answers :func:`can` in routes (through
``require``), in event handlers and in plain code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

from pydantic import AfterValidator, StringConstraints

from lms_shared.auth._errors import PermissionDenied
from lms_shared.caching import BoundedCache

if TYPE_CHECKING:
    from lms_shared.auth._principal import Principal

__all__ = ["DEFAULT_ROLES", "Policy", "can", "check", "parse_permission", "permission_pattern"]

_PART = r"(?:\*|[a-z][a-z0-9_.-]{0,63})"
_PATTERN = re.compile(rf"{_PART}:{_PART}")
_CONCRETE = re.compile(r"[a-z][a-z0-9_.-]{0,63}:[a-z][a-z0-9_.-]{0,63}")

DEFAULT_ROLES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "admin": frozenset({"*:*"}),
        "instructor": frozenset(
            {
                "course:read", "course:write", "course:publish",
                "lesson:*", "enrollment:read", "enrollment:write",
                "submission:read", "grade:read", "grade:write", "user:read",
            }
        ),
        "teaching_assistant": frozenset(
            {
                "course:read", "lesson:read", "enrollment:read",
                "submission:read", "grade:read", "grade:write", "user:read",
            }
        ),
        "student": frozenset(
            {
                "course:read", "lesson:read", "enrollment:read",
                "enrollment:create", "submission:read", "submission:write", "grade:read",
            }
        ),
        "observer": frozenset({"course:read", "lesson:read", "enrollment:read", "grade:read"}),
        "service": frozenset({"*:read"}),
    }
)  # fmt: skip
"""The LMS roles and what they grant by default.

``admin`` may do everything; ``service`` is the role of other services of
the platform calling with a service token: they read each other's data
(grant more with ``LMS_AUTH_ROLES`` when a service writes on another's behalf).
"""


def parse_permission(permission: str) -> tuple[str, str, str, str]:
    """The four patterns that grant ``permission``: itself and its wildcards.

    Raises:
        ValueError: ``permission`` is not a concrete ``resource:action``.
    """
    return _candidates(permission)


@lru_cache(maxsize=4096)
def _candidates(permission: str) -> tuple[str, str, str, str]:
    if _CONCRETE.fullmatch(permission) is None:
        raise ValueError(f"a permission is 'resource:action' in lower case, got {permission!r}")
    resource, action = permission.split(":")
    return permission, f"{resource}:*", f"*:{action}", "*:*"


def permission_pattern(grant: str) -> str:
    """Check a granted pattern (``course:*``, ``*:read``, ``*``) and normalise ``*``.

    Raises:
        ValueError: it is not ``resource:action`` with optional ``*`` parts.
    """
    grant = "*:*" if grant == "*" else grant
    if _PATTERN.fullmatch(grant) is None:
        raise ValueError(f"a permission pattern is 'resource:action' or '*', got {grant!r}")
    return grant


PermissionGrant = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(permission_pattern)
]
"""A permission pattern as a model field type (API-key scopes, role grants):
a malformed one is a validation error naming the field (a 422 problem in a
request body), never a ``ValueError`` escaping to the last-resort handler."""


class Policy:
    """Roles and the permission patterns each grants.

    Args:
        roles: the base roles (the LMS defaults unless given).
        grants: permissions *added* to roles (new role names create roles):
            what a service's code grants its own resources to the platform's
            roles (``create_service(..., roles=...)``).
        overrides: roles whose grants *replace* what the two above give, or
            new roles: the operator's ``LMS_AUTH_ROLES``.

    Raises:
        ValueError: a role name or a permission pattern is malformed.
    """

    def __init__(
        self,
        roles: Mapping[str, Iterable[str]] = DEFAULT_ROLES,
        *,
        grants: Mapping[str, Iterable[str]] | None = None,
        overrides: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        merged: dict[str, Iterable[str]] = dict(roles)
        for role, added in (grants or {}).items():
            if isinstance(added, str):
                raise ValueError(f"the grants of role {role!r} must be a list")
            merged[role] = [*merged.get(role, ()), *added]
        merged.update(overrides or {})
        table: dict[str, frozenset[str]] = {}
        for role, patterns in merged.items():
            if re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", role) is None:
                raise ValueError(f"a role name is lower-case letters, digits, _ and -: {role!r}")
            if isinstance(patterns, str):
                raise ValueError(f"the grants of role {role!r} must be a list")
            table[role] = frozenset(permission_pattern(g) for g in patterns)
        self.roles: Mapping[str, frozenset[str]] = MappingProxyType(table)
        # role sets are few; stay bounded anyway
        self._grants: BoundedCache[frozenset[str], frozenset[str]] = BoundedCache(1024)

    def grants(self, roles: frozenset[str]) -> frozenset[str]:
        """Every pattern granted by ``roles`` (unknown roles grant nothing)."""
        found = self._grants.get(roles)
        if found is None:
            found = frozenset().union(*(self.roles.get(r, frozenset()) for r in roles))
            self._grants.set(roles, found)
        return found

    def allows(
        self,
        principal: Principal,
        permission: str,
        *,
        course: str | UUID | None = None,
        tenant: str | UUID | None = None,
    ) -> bool:
        """Whether ``principal`` holds ``permission`` (see the module docstring).

        Raises:
            ValueError: ``permission`` is not a concrete ``resource:action``.
        """
        candidates = _candidates(permission)
        if tenant is not None and principal.tenant is not None and principal.tenant != str(tenant):
            return False
        scopes = principal.scopes
        if scopes is not None and scopes.isdisjoint(candidates):
            return False
        if not self.grants(principal.roles).isdisjoint(candidates):
            return True
        if course is not None:
            in_course = principal.course_roles.get(str(course))
            if in_course:
                return not self.grants(in_course).isdisjoint(candidates)
        return False

    def check(
        self,
        principal: Principal,
        permission: str,
        *,
        course: str | UUID | None = None,
        tenant: str | UUID | None = None,
    ) -> None:
        """Like :meth:`allows`, raising instead of returning ``False``.

        Raises:
            PermissionDenied: the principal lacks the permission (a 403 problem).
        """
        if not self.allows(principal, permission, course=course, tenant=tenant):
            where = f" in course {course}" if course is not None else ""
            raise PermissionDenied(
                permission, f"this action needs the {permission!r} permission{where}"
            )


def can(
    principal: Principal,
    permission: str,
    *,
    course: str | UUID | None = None,
    tenant: str | UUID | None = None,
) -> bool:
    """Whether ``principal`` holds ``permission``, by the policy it was built with.

    Example::

        if not can(who, "grade:write", course=submission.course_id):
            ...
    """
    return principal.can(permission, course=course, tenant=tenant)


def check(
    principal: Principal,
    permission: str,
    *,
    course: str | UUID | None = None,
    tenant: str | UUID | None = None,
) -> None:
    """Raise :class:`PermissionDenied` (403) unless ``principal`` holds ``permission``."""
    principal.check(permission, course=course, tenant=tenant)
