"""Security response headers (OWASP), as pure ASGI.

Every HTTP response gets the OWASP recommended headers unless the app set
that header itself (a route that knows better wins), in two sets by what
the response is:

* an API response (JSON, problem details, anything but an HTML page) gets
  :data:`API_HEADERS`, the set the OWASP REST Security Cheat Sheet lists
  for every API response: ``Cache-Control: no-store``, a CSP that allows
  nothing (``frame-ancestors 'none'`` included), ``X-Content-Type-Options:
  nosniff``, ``X-Frame-Options: deny`` (and HSTS over TLS);
* an HTML page (``Content-Type: text/html``: ``/docs``, a route that
  renders one) gets the whole OWASP Secure Headers Project set,
  :data:`OWASP_HEADERS`, whose other headers (COOP/COEP/CORP,
  ``Permissions-Policy``, ``Referrer-Policy``, ...) instruct a browser
  about a document and, as the cheat sheet says, do nothing for an API.

Sending the document set on every JSON response cost about 0.1x of a tiny
route's throughput (twelve headers, ~900 bytes, checked and encoded by the
server per response) for no protection. The header lists are built once
in ``__init__``; per request the middleware only picks one of them and
merges it into the response start message:

* ``Strict-Transport-Security`` only on responses served over TLS: the
  scope's scheme is ``https`` (behind a trusted proxy, the scheme
  :class:`~lms_shared.http.proxies.ForwardedMiddleware` set from its
  ``X-Forwarded-Proto``; a client's own header changes nothing);
* ``Content-Security-Policy``: a strict API policy, with overrides per
  path (``/docs`` gets one that lets Swagger UI load);
* ``Server`` and ``X-Powered-By`` headers set by the app are removed
  (run uvicorn with ``--no-server-header`` for its own one).
"""

from __future__ import annotations

from collections.abc import Mapping

from lms_shared.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "API_CSP",
    "API_HEADERS",
    "CLEAR_SITE_DATA",
    "DOCS_CSP",
    "OWASP_HEADERS",
    "REMOVED_HEADERS",
    "SecurityHeadersMiddleware",
]

API_CSP = (
    "default-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'; "
    "object-src 'none'; upgrade-insecure-requests"
)
"""CSP of JSON API responses: nothing may load, frame or submit."""

DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'"
)
"""CSP that lets FastAPI's Swagger UI page (``/docs``) load its assets."""

CLEAR_SITE_DATA = {"clear-site-data": '"cache","cookies","storage"'}
"""Headers for a logout response (pass them to the route's response)."""

OWASP_HEADERS: Mapping[str, str] = {
    "content-security-policy": API_CSP,
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": (
        "accelerometer=(), autoplay=(), camera=(), cross-origin-isolated=(), "
        "display-capture=(), encrypted-media=(), fullscreen=(), geolocation=(), "
        "gyroscope=(), keyboard-map=(), magnetometer=(), microphone=(), midi=(), "
        "payment=(), picture-in-picture=(), publickey-credentials-get=(), "
        "screen-wake-lock=(), sync-xhr=(self), usb=(), web-share=(), "
        "xr-spatial-tracking=(), clipboard-read=(), clipboard-write=(), gamepad=(), "
        "hid=(), idle-detection=(), interest-cohort=(), serial=(), unload=()"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "deny",
    "x-permitted-cross-domain-policies": "none",
    "x-dns-prefetch-control": "off",
    "cache-control": "no-store, max-age=0",
}
"""The set of HTML pages (OWASP Secure Headers Project, ``headers_add.json``) minus HSTS."""

API_HEADERS: Mapping[str, str] = {
    "content-security-policy": API_CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "deny",
    "cache-control": "no-store, max-age=0",
}
"""The set of API responses (OWASP REST Security Cheat Sheet) minus HSTS."""

REMOVED_HEADERS = frozenset(
    {"server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-generator"}
)
"""Response headers that only tell an attacker what runs here."""

_DOCS_OVERRIDES: Mapping[str, Mapping[str, str | None]] = {
    "/docs": {"content-security-policy": DOCS_CSP, "cross-origin-embedder-policy": None},
    "/docs/oauth2-redirect": {
        "content-security-policy": DOCS_CSP,
        "cross-origin-embedder-policy": None,
    },
}

Headers = tuple[tuple[bytes, bytes], ...]
_Variants = tuple[Headers, Headers, Headers, Headers]
"""API plain, API over TLS, page plain, page over TLS."""


def _encode(headers: Mapping[str, str | None]) -> Headers:
    out = []
    for name, value in headers.items():
        if value is None:
            continue
        if not name or any(c in name for c in " :\r\n") or "\r" in value or "\n" in value:
            raise ValueError(f"invalid header {name!r}")
        out.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return tuple(out)


class SecurityHeadersMiddleware:
    """Adds the secure headers to every HTTP response.

    Args:
        app: the wrapped ASGI app.
        headers: replaces :data:`OWASP_HEADERS`, the set of HTML pages (a
            ``None`` value drops one).
        api_headers: replaces :data:`API_HEADERS`, the set of every other response.
        csp: replaces the default ``Content-Security-Policy`` of both sets.
        hsts_max_age: seconds of HSTS; 0 sends none.
        hsts_include_subdomains: add ``includeSubDomains``.
        hsts_preload: add ``preload`` (only once the domain is on the list).
        path_overrides: per-path header changes, ``{"/docs": {"content-security-policy":
            "...", "cross-origin-embedder-policy": None}}``, applied to both
            sets; a key ending in ``*`` is a prefix. ``/docs`` has one by default.
        remove: response headers to strip.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        headers: Mapping[str, str | None] | None = None,
        api_headers: Mapping[str, str | None] | None = None,
        csp: str | None = None,
        hsts_max_age: int = 63072000,
        hsts_include_subdomains: bool = True,
        hsts_preload: bool = False,
        path_overrides: Mapping[str, Mapping[str, str | None]] | None = None,
        remove: frozenset[str] = REMOVED_HEADERS,
    ) -> None:
        if hsts_max_age < 0:
            raise ValueError("hsts_max_age must not be negative")
        self.app = app
        page: dict[str, str | None] = dict(OWASP_HEADERS if headers is None else headers)
        api: dict[str, str | None] = dict(API_HEADERS if api_headers is None else api_headers)
        if csp is not None:
            page["content-security-policy"] = api["content-security-policy"] = csp
        hsts = None
        if hsts_max_age:
            hsts = f"max-age={hsts_max_age}"
            hsts += "; includeSubDomains" if hsts_include_subdomains else ""
            hsts += "; preload" if hsts_preload else ""
        self.remove = frozenset(name.lower().encode() for name in remove)
        overrides = {**_DOCS_OVERRIDES, **(path_overrides or {})}
        self._default = self._variants(api, page, hsts)
        self._exact: dict[str, _Variants] = {}
        self._prefixes: list[tuple[str, _Variants]] = []
        for path, changes in overrides.items():
            lowered = {k.lower(): v for k, v in changes.items()}
            variants = self._variants({**api, **lowered}, {**page, **lowered}, hsts)
            if path.endswith("*"):
                self._prefixes.append((path[:-1], variants))
            else:
                self._exact[path] = variants
        self._prefixes.sort(key=lambda item: -len(item[0]))
        # every name this middleware adds or strips, lower-case: the fast path
        # appends our headers when the app sent none of them
        every = [self._default, *self._exact.values()]
        every += [variants for _, variants in self._prefixes]
        added = {name for variants in every for set_ in variants for name, _ in set_}
        self._touched = self.remove | frozenset(added)

    @staticmethod
    def _variants(
        api: Mapping[str, str | None], page: Mapping[str, str | None], hsts: str | None
    ) -> _Variants:
        def pair(headers: Mapping[str, str | None]) -> tuple[Headers, Headers]:
            plain = _encode(headers)
            tls = (*plain, (b"strict-transport-security", hsts.encode())) if hsts else plain
            return plain, tls

        return (*pair(api), *pair(page))

    def _variants_for(self, scope: Scope) -> _Variants:
        path = scope.get("path", "")
        variants = self._exact.get(path)
        if variants is None:
            for prefix, candidate in self._prefixes:
                if path.startswith(prefix):
                    return candidate
            return self._default
        return variants

    def headers_for(self, scope: Scope, *, html: bool = False) -> Headers:
        """The headers a response to this request gets (before the app's own win).

        Args:
            scope: the request.
            html: the response is an HTML page (the document set), not an API response.
        """
        variants = self._variants_for(scope)
        tls = scope.get("scheme") == "https"
        return variants[(2 if html else 0) + (1 if tls else 0)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        variants = self._variants_for(scope)
        tls = 1 if scope.get("scheme") == "https" else 0
        remove = self.remove
        touched = self._touched

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                html = False
                clash = False
                for name, value in headers:
                    lowered = name.lower()
                    if lowered == b"content-type":
                        html = value[:9].lower() == b"text/html"
                    if lowered in touched:
                        clash = True
                extra = variants[(2 if html else 0) + tls]
                # common case: the app set none of our headers and nothing to strip
                if not clash:
                    message["headers"] = [*headers, *extra]
                    await send(message)
                    return
                own = []
                names = set()
                for name, value in headers:
                    lowered = name.lower()
                    if lowered in remove:
                        continue
                    names.add(lowered)
                    own.append((name, value))
                own.extend(item for item in extra if item[0] not in names)
                message["headers"] = own
            await send(message)

        await self.app(scope, receive, send_wrapper)
