"""The one type for "who is calling": a user, a service or an API key.

Routes receive it from ``require(...)``; event handlers and plain code
build or receive one and ask :func:`~lms_shared.auth.can` about it. It is
immutable, and carries the :class:`Policy` it is checked against (the
service's, when the service built it; the LMS defaults otherwise).

Access tokens carry a principal in these claims (RFC 9068 plus ours):
``sub``, ``kind`` (``user`` or ``service``), ``tenant``, ``roles`` (list),
``course_roles`` (object of course id to list of roles), ``scope``
(space-separated), ``client_id``, ``name``, ``jti`` and ``exp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, get_args
from uuid import UUID

from lms_shared.auth._errors import InvalidToken
from lms_shared.auth._rbac import Policy
from lms_shared.caching import BoundedCache

__all__ = ["DEFAULT_POLICY", "Principal", "PrincipalKind", "principal_from_claims"]

PrincipalKind = Literal["user", "service", "api_key"]
_KINDS = frozenset(get_args(PrincipalKind))
_EMPTY: Mapping[str, frozenset[str]] = MappingProxyType({})
DEFAULT_POLICY = Policy()
MAX_ROLES = 64
MAX_COURSES = 1000
MAX_DECISIONS = 256


def _new_decisions() -> BoundedCache[tuple[str, object, object], bool]:
    return BoundedCache(MAX_DECISIONS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """An authenticated caller.

    Attributes:
        subject: stable id of the user, service or API key owner.
        kind: ``user``, ``service`` or ``api_key``.
        tenant: the organization it belongs to; ``None`` for platform-wide
            principals (platform staff, services).
        roles: platform roles (``admin``, ``instructor``, ...).
        course_roles: roles per course id (``{"<uuid>": {"student"}}``).
        scopes: permission patterns the credential is limited to, or
            ``None`` when it is limited by its roles only.
        name: a display name, if known.
        client_id: the OAuth client the token was issued to, if any.
        credential_id: the token's ``jti`` or the API key's id.
        expires_at: when the credential expires, if it does.
        policy: the roles-to-permissions table checks use.
    """

    subject: str
    kind: PrincipalKind = "user"
    tenant: str | None = None
    roles: frozenset[str] = frozenset()
    course_roles: Mapping[str, frozenset[str]] = field(default_factory=lambda: _EMPTY)
    scopes: frozenset[str] | None = None
    name: str | None = None
    client_id: str | None = None
    credential_id: str | None = None
    expires_at: datetime | None = None
    policy: Policy = field(default=DEFAULT_POLICY, repr=False, compare=False)
    _decisions: BoundedCache[tuple[str, object, object], bool] = field(
        default_factory=_new_decisions, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.subject, str) or not self.subject:
            raise ValueError("a principal needs a non-empty subject")
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {self.kind!r}")
        if type(self.roles) is not frozenset:
            object.__setattr__(self, "roles", frozenset(self.roles))
        if self.course_roles:
            frozen = {str(c): frozenset(r) for c, r in self.course_roles.items()}
            object.__setattr__(self, "course_roles", MappingProxyType(frozen))
        elif self.course_roles is not _EMPTY:
            object.__setattr__(self, "course_roles", _EMPTY)
        if self.scopes is not None and type(self.scopes) is not frozenset:
            object.__setattr__(self, "scopes", frozenset(self.scopes))

    def can(
        self, permission: str, *, course: str | UUID | None = None, tenant: str | UUID | None = None
    ) -> bool:
        """Whether this principal holds ``permission`` (see :func:`~lms_shared.auth.can`).

        Answers are remembered on the principal (a cached principal serves
        many requests): the latest 256 distinct questions.
        """
        key = (permission, course, tenant)
        decisions = self._decisions
        allowed = decisions.get(key)
        if allowed is None:
            allowed = self.policy.allows(self, permission, course=course, tenant=tenant)
            decisions.set(key, allowed)
        return allowed

    def check(
        self, permission: str, *, course: str | UUID | None = None, tenant: str | UUID | None = None
    ) -> None:
        """Raise :class:`~lms_shared.auth.PermissionDenied` unless it holds ``permission``."""
        if not self.can(permission, course=course, tenant=tenant):
            self.policy.check(self, permission, course=course, tenant=tenant)

    def roles_in(self, course: str | UUID) -> frozenset[str]:
        """Its roles in one course (platform roles not included)."""
        return self.course_roles.get(str(course), frozenset())

    def to_claims(self) -> dict[str, Any]:
        """The token claims that carry this principal (no ``iss``/``aud``/``exp``)."""
        claims: dict[str, Any] = {"sub": self.subject}
        if self.kind != "user":
            claims["kind"] = self.kind
        if self.tenant is not None:
            claims["tenant"] = self.tenant
        if self.roles:
            claims["roles"] = sorted(self.roles)
        if self.course_roles:
            claims["course_roles"] = {c: sorted(r) for c, r in self.course_roles.items()}
        if self.scopes is not None:
            claims["scope"] = " ".join(sorted(self.scopes))
        if self.name is not None:
            claims["name"] = self.name
        if self.client_id is not None:
            claims["client_id"] = self.client_id
        return claims


def _strings(value: object, claim: str, limit: int) -> frozenset[str]:
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidToken(f"the {claim!r} claim is not a list of at most {limit} strings")
    if not all(isinstance(item, str) and 0 < len(item) <= 64 for item in value):
        raise InvalidToken(f"the {claim!r} claim is not a list of short strings")
    return frozenset(value)


def _optional_str(claims: Mapping[str, Any], claim: str) -> str | None:
    value = claims.get(claim)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 255:
        raise InvalidToken(f"the {claim!r} claim is not a short string")
    return value


def _course_roles(value: object) -> Mapping[str, frozenset[str]]:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict) or len(value) > MAX_COURSES:
        raise InvalidToken("the 'course_roles' claim is not an object of course roles")
    return {
        str(course): _strings(roles, "course_roles", MAX_ROLES) for course, roles in value.items()
    }


def principal_from_claims(claims: Mapping[str, Any], policy: Policy = DEFAULT_POLICY) -> Principal:
    """Build the principal of a verified token's claims.

    Raises:
        InvalidToken: a claim has the wrong type or size (never a 500).
    """
    subject = _optional_str(claims, "sub")
    if subject is None:
        raise InvalidToken("the token has no subject")
    kind = claims.get("kind", "user")
    if kind not in ("user", "service"):  # api_key principals never come from a token
        raise InvalidToken("the 'kind' claim is not 'user' or 'service'")
    scope = claims.get("scope")
    if scope is not None and (not isinstance(scope, str) or len(scope) > 4096):
        raise InvalidToken("the 'scope' claim is not a space-separated string")
    roles = claims.get("roles")
    exp = claims.get("exp")
    return Principal(
        subject=subject,
        kind=kind,
        tenant=_optional_str(claims, "tenant"),
        roles=_strings(roles, "roles", MAX_ROLES) if roles is not None else frozenset(),
        course_roles=_course_roles(claims.get("course_roles")),
        scopes=frozenset(scope.split()) if scope is not None else None,
        name=_optional_str(claims, "name"),
        client_id=_optional_str(claims, "client_id"),
        credential_id=_optional_str(claims, "jti"),
        expires_at=datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None,
        policy=policy,
    )
