"""Pure ASGI authentication: the principal before routing, for everything downstream.

``require(...)`` authenticates inside FastAPI's dependency injection, which
is where the permission of a route is known; but middleware that runs
before routing (the rate limiter keying on the caller, access logs) needs
the principal earlier, and some services want every route under a prefix
closed to anonymous callers. :class:`AuthMiddleware` does both, without
``BaseHTTPMiddleware``:

* a request with credentials is authenticated (a cached token costs a dict
  lookup) and its :class:`Principal` stored in ``scope["state"]["principal"]``,
  where ``require``, ``request.state.principal`` and the rate limiter find it;
* under a ``required`` path prefix, a request without valid credentials is
  answered here with the same 401/400/503 problem ``require`` would give;
  elsewhere it passes on without a principal, and ``require`` explains.

Routes under a required prefix may then check permissions in plain code,
without a dependency::

    app.add_middleware(AuthMiddleware, authenticator=auth, renderer=problems, required=("/v1/",))

    @v1.get("/courses/{course_id}")
    async def read(course_id: str, request: Request) -> Course:
        check(request.state.principal, "course:read")
"""

from __future__ import annotations

from collections.abc import Sequence

from lms_shared.auth._authenticator import Authenticator
from lms_shared.errors import ProblemError
from lms_shared.http.auth import SCOPE_KEY
from lms_shared.http.problems import ProblemRenderer
from lms_shared.types import ASGIApp, Receive, Scope, Send

__all__ = ["AuthMiddleware"]

_CREDENTIALS = (b"authorization", b"x-api-key")


class AuthMiddleware:
    """Authenticate before routing; refuse anonymous requests under ``required`` prefixes.

    Args:
        app: the wrapped ASGI app.
        authenticator: the service's authenticator (``service.auth.authenticator``).
        renderer: renders the problem responses.
        required: path prefixes where credentials are mandatory.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        renderer: ProblemRenderer,
        required: Sequence[str] = (),
    ) -> None:
        if any(not prefix.startswith("/") for prefix in required):
            raise ValueError("required prefixes are paths starting with '/'")
        self.app = app
        self.authenticator = authenticator
        self.renderer = renderer
        self.required = tuple(required)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        principal = self.authenticator.cached(headers)
        if principal is None:
            needed = scope["path"].startswith(self.required) if self.required else False
            if needed or any(name in _CREDENTIALS for name, _ in headers):
                try:
                    principal = await self.authenticator.authenticate(headers)
                except ProblemError as exc:
                    if needed:
                        await self._refuse(scope, send, exc)
                        return
        if principal is not None:
            scope[SCOPE_KEY] = principal  # a scope key, unlike state, is never shared
            scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, exc: ProblemError) -> None:
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()
        ]
        status, raw_headers, body = self.renderer.raw(
            exc.problem_code, detail=exc.detail, instance=scope.get("path"), headers=headers
        )
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
