"""FastAPI glue: ``who: Principal = require("course:publish")``.

:func:`require` returns a dependency that authenticates the request with
the app's :class:`Authenticator` (installed by the service, or by
:func:`install_auth` on a bare FastAPI app), checks the permissions and
returns the :class:`Principal`. The permissions are parsed when the route
is declared, so a typo fails at import, not per request. A check about one
course or tenant names the path parameter that holds its id::

    @v1.post("/courses/{course_id}/grades")
    async def grade(course_id: UUID, who: Principal = require("grade:write", course="course_id")):
        ...

The principal is also left in ``request.state.principal`` for code that
runs after the dependency (logging, auditing).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from opentelemetry import baggage
from opentelemetry import context as otel_context

from lms_shared.auth._authenticator import Authenticator
from lms_shared.auth._errors import PermissionDenied
from lms_shared.auth._principal import Principal
from lms_shared.auth._rbac import parse_permission
from lms_shared.http.routes import flatten_routes

__all__ = [
    "authenticator_of",
    "install_auth",
    "optional_principal",
    "protected_routes",
    "require",
]

STATE_KEY = "lms_auth"
SCOPE_KEY = "lms.principal"
_USER = "lms.user"
_TENANT = "lms.tenant"


def install_auth(app: FastAPI, authenticator: Authenticator) -> None:
    """Make ``require`` use ``authenticator`` in ``app`` (the service does this)."""
    setattr(app.state, STATE_KEY, authenticator)


def authenticator_of(request: Request) -> Authenticator:
    """The authenticator installed in the request's app.

    Raises:
        RuntimeError: none is installed (a programming error, answered 500).
    """
    found = getattr(request.app.state, STATE_KEY, None)
    if not isinstance(found, Authenticator):
        raise RuntimeError("no authenticator is installed: use create_service or install_auth")
    return found


class _Requirement(SecurityBase):
    """The dependency ``require`` builds (one per route, made at declaration).

    A ``SecurityBase``, so FastAPI lists ``bearerAuth`` in the operation's
    OpenAPI ``security`` (the scheme itself comes from ``lms_shared.http.openapi``).
    """

    def __init__(
        self, permissions: tuple[str, ...], course: str | None, tenant: str | None
    ) -> None:
        self.permissions = permissions
        self.course = course
        self.tenant = tenant
        # the keys of Principal.can's memo for a check about no course or tenant
        self._plain = None if course or tenant else tuple((p, None, None) for p in permissions)
        self._app: object = None
        self._authenticator: Authenticator | None = None
        self.model = HTTPBearerModel(bearerFormat="JWT")
        self.scheme_name = "bearerAuth"

    async def __call__(self, request: Request) -> Principal:
        scope = request.scope
        authenticator = self._authenticator
        if scope["app"] is not self._app or authenticator is None:
            authenticator = self._authenticator = authenticator_of(request)
            self._app = scope["app"]
        principal = scope.get(SCOPE_KEY)  # set per request by AuthMiddleware, if installed
        if principal is None:
            headers = scope["headers"]
            principal = authenticator.cached(headers) or await authenticator.authenticate(headers)
        if self._plain is not None:
            decisions = principal._decisions  # a principal remembers what it was allowed
            for key in self._plain:
                if not decisions.get(key) and not principal.can(key[0]):
                    raise authenticator.denied(self._denied(key[0], None))
        else:
            params = scope.get("path_params", {})
            course = params[self.course] if self.course is not None else None
            tenant = params[self.tenant] if self.tenant is not None else None
            for permission in self.permissions:
                if not principal.can(permission, course=course, tenant=tenant):
                    raise authenticator.denied(self._denied(permission, course))
        scope.setdefault("state", {})["principal"] = principal
        _carry_in_baggage(principal)
        return principal

    @staticmethod
    def _denied(permission: str, course: object) -> PermissionDenied:
        where = f" in course {course}" if course is not None else ""
        return PermissionDenied(
            permission, f"this action needs the {permission!r} permission{where}"
        )


def _carry_in_baggage(principal: Principal) -> None:
    """Put the caller's tenant and user in the W3C baggage for the rest of the request.

    Calls to other services then carry them (``baggage: lms.tenant=...,lms.user=...``),
    so a callee's logs and spans know on whose behalf it works. Ids only, never names.
    """
    current = otel_context.get_current()
    if baggage.get_baggage(_USER, current) == principal.subject:
        return
    updated = baggage.set_baggage(_USER, principal.subject[:128], context=current)
    if principal.tenant:
        updated = baggage.set_baggage(_TENANT, principal.tenant[:128], context=updated)
    otel_context.attach(updated)  # the request's task: the tracing middleware restores it


def require(*permissions: str, course: str | None = None, tenant: str | None = None) -> Any:
    """A dependency that authenticates the caller and checks ``permissions``.

    Args:
        *permissions: ``resource:action`` permissions, all required; none
            means any authenticated caller.
        course: the path parameter holding the course id the check is about.
        tenant: the path parameter holding the tenant id the check is about.

    Returns:
        ``Depends(...)`` resolving to the :class:`Principal`; a 401 problem
        without (valid) credentials, a 403 problem without a permission.

    Raises:
        ValueError: a permission is not a concrete ``resource:action``.
    """
    for permission in permissions:
        parse_permission(permission)
    return Depends(_Requirement(tuple(permissions), course, tenant))


class _Optional:
    async def __call__(self, request: Request) -> Principal | None:
        scope = request.scope
        for name, _ in scope["headers"]:
            if name in (b"authorization", b"x-api-key"):
                return await authenticator_of(request).authenticate(scope["headers"])
        return None


def optional_principal() -> Any:
    """A dependency resolving to the caller's principal, or ``None`` without credentials.

    Credentials that are present but invalid still answer 401.
    """
    return Depends(_Optional())


def protected_routes(app: FastAPI) -> list[str]:
    """The paths of ``app`` whose operations :func:`require` credentials.

    The service reads it at start-up: protected routes and no way to check
    a token make it log a warning and report itself not ready.
    """
    found: list[str] = []
    for route in flatten_routes(app.router.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is not None and _requires(dependant):
            found.append(str(route.path))
    return found


def _requires(dependant: Any) -> bool:
    pending = [dependant]
    while pending:
        current = pending.pop()
        if isinstance(current.call, _Requirement):
            return True
        pending.extend(current.dependencies)
    return False
