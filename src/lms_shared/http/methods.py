"""HEAD wherever GET works, and a 405's ``Allow`` listing every method of the path.

RFC 9110 §9.3.2: a server answers HEAD exactly as GET, without the
content. FastAPI routes answer only the methods they declare, so a HEAD
request got a 405. :class:`MethodsMiddleware` serves HEAD by running the
request as GET and dropping the body (the headers, ``Content-Length``
included, are GET's). RFC 9110 §15.5.6: a 405 lists the target's allowed
methods in ``Allow``; Starlette names only the methods of the first route
whose path matched, so the middleware recomputes ``Allow`` from every
route of the path when the answer is a 405. Both are pure ASGI, and cost a
string comparison per request on the common path.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Match

from lms_shared.http.routes import flatten_routes
from lms_shared.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MethodsMiddleware", "allowed_methods"]


def allowed_methods(routes: list[Any], scope: Scope) -> list[str]:
    """Every method the routes serve on ``scope``'s path (HEAD with GET), sorted."""
    probe = dict(scope)
    methods: set[str] = set()
    for route in flatten_routes(routes):
        route_methods = getattr(route, "methods", None)
        if not route_methods:
            continue
        match, _ = route.matches(probe)
        if match is not Match.NONE:
            methods.update(m.upper() for m in route_methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


class MethodsMiddleware:
    """Serve HEAD as GET without the body; make ``Allow`` of a 405 complete.

    Args:
        app: the wrapped ASGI app.
        routes: the app's routes (``app.router.routes``), read at request time
            so routes included after the middleware was built count.
    """

    def __init__(self, app: ASGIApp, *, routes: list[Any]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = dict(scope)
            scope["method"] = "GET"
        routes = self.routes

        async def send_wrapper(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start" and message["status"] == 405:
                allow = ", ".join(allowed_methods(routes, {**scope, "method": "OPTIONS"}))
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                headers.append((b"allow", allow.encode("latin-1")))
                message = {**message, "headers": headers}
            elif kind == "http.response.body" and head:
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_wrapper)
