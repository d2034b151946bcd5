"""The ``Host`` a request may name, and the URLs a service writes into its answers.

The ``Host`` header is the client's to write. A service that builds
absolute URLs from it (``request.url``, ``url_for``) hands an attacker its
links: ``Host: evil.example`` in a request whose answer a cache or a
password-reset mail keeps becomes a link to the attacker's site. So:

* links a service writes are relative references (``/v1/courses?cursor=...``)
  or built from the configured public base URL (``LMS_PUBLIC_BASE_URL``):
  :func:`public_url`; ``Page.build`` uses it, and so does the trailing-slash
  redirect's ``Location`` (:class:`HostsMiddleware` rewrites any absolute
  ``Location``/``Content-Location`` the framework built from the request's
  own host);
* :class:`HostsMiddleware` answers a request for a host not in
  ``LMS_ALLOWED_HOSTS`` with a 400 ``invalid-host`` problem. Unset, every
  host is served (development); production refuses to start without it.

Patterns are host names or IP literals (``api.example.org``, ``10.0.0.5``,
``::1``), ``*.example.org`` (any subdomain, not ``example.org`` itself) or
``*`` (any host: an explicit choice, refused in production). Ports are
ignored. ``LMS_DISCOVERY_ADDRESS``, the address other services call this
one at, is always allowed; health probes (``/health/...``) are not checked,
since orchestrators call them by the pod's address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

from fastapi import FastAPI

from lms_shared.errors import ErrorCode, SettingsError
from lms_shared.http.problems import ProblemRenderer
from lms_shared.settings import Settings
from lms_shared.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "INVALID_HOST",
    "PROBLEMS",
    "AllowedHosts",
    "HostsMiddleware",
    "base_url_from_settings",
    "install_public_base_url",
    "public_base_url",
    "public_url",
]

INVALID_HOST = ErrorCode("invalid-host", 400, "Host not served here")
"""The request's ``Host`` is missing, repeated or not one of ``LMS_ALLOWED_HOSTS``."""

PROBLEMS = (INVALID_HOST,)

STATE_KEY = "lms_public_base_url"
_HOST = b"host"
_EXEMPT = ("/health/",)
_URL_HEADERS = (b"location", b"content-location")
_PATH_SAFE = "/!$&'()*+,;=:@-._~"  # RFC 3986 pchar and "/", but not "%"


def _normalise(host: str) -> str | None:
    """A Host value without its port, lower-case; ``None`` when it is not a host."""
    host = host.strip().lower()
    if host.startswith("["):  # [IPv6]:port
        end = host.find("]")
        if end == -1 or (host[end + 1 :] and not host[end + 1 :].startswith(":")):
            return None
        host = host[1:end]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        return host
    if host.count(":") == 1:
        host, _, port = host.partition(":")
        if not port.isdigit():
            return None
    elif ":" in host:  # a bare IPv6 literal (only in patterns)
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    host = host.rstrip(".")
    if not host or len(host) > 253:
        return None
    if not all(c.isalnum() or c in "-." for c in host) or not host.isascii():
        return None
    return host


class AllowedHosts:
    """The hosts a service answers for.

    Args:
        patterns: host names, IP literals, ``*.domain`` or ``*``; empty
            means every host (development).

    Raises:
        ValueError: a pattern is not a host name, IP literal or wildcard.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        exact: set[str] = set()
        suffixes: list[str] = []
        self.any = False
        self.patterns = tuple(patterns)
        for pattern in self.patterns:
            value = pattern.strip().lower()
            if value == "*":
                self.any = True
                continue
            wildcard = value.startswith("*.")
            name = _normalise(value[2:] if wildcard else value)
            if name is None or "*" in value[2 if wildcard else 0 :]:
                raise ValueError(f"not a host name, IP address or *.domain: {pattern!r}")
            if wildcard:
                suffixes.append("." + name)
            else:
                exact.add(name)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)
        self.open = self.any or not self.patterns

    @classmethod
    def from_settings(cls, settings: Settings) -> AllowedHosts:
        """The hosts of ``LMS_ALLOWED_HOSTS``, plus ``LMS_DISCOVERY_ADDRESS``.

        Raises:
            SettingsError: a pattern is invalid.
        """
        patterns = list(settings.allowed_hosts)
        try:
            hosts = cls(patterns)
        except ValueError as exc:
            raise SettingsError([("LMS_ALLOWED_HOSTS", str(exc))]) from None
        address = settings.discovery_address
        if patterns and address and _normalise(address) is not None:
            hosts = cls([*patterns, address])
        return hosts

    def __repr__(self) -> str:
        return f"AllowedHosts({list(self.patterns)!r})"

    def allows(self, host: str | None) -> bool:
        """Whether a request's ``Host`` value (port included or not) is served."""
        if self.open:
            return True
        if host is None:
            return False
        name = _normalise(host)
        if name is None:
            return False
        return name in self._exact or name.endswith(self._suffixes)


def _host_header(scope: Scope) -> str | None:
    """The request's one ``Host`` header; ``None`` when absent or repeated."""
    found: bytes | None = None
    for name, value in scope["headers"]:
        if name == _HOST:
            if found is not None:
                return None
            found = value
    return None if found is None else found.decode("latin-1")


class HostsMiddleware:
    """Pure ASGI: refuse hosts not allowed; keep absolute URLs in headers off the Host.

    A request naming a host :class:`AllowedHosts` does not allow (or no
    ``Host``, or two) gets a 400 ``invalid-host`` problem; a WebSocket is
    closed with 1008. A ``Location`` or ``Content-Location`` header that the
    framework built from the request's own scheme and host (the
    trailing-slash redirect) becomes :func:`public_url` of its path.

    Args:
        app: the wrapped ASGI app.
        allowed: the hosts served.
        renderer: renders the problem.
        base_url: the public base URL; ``None`` makes those URLs relative.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed: AllowedHosts,
        renderer: ProblemRenderer,
        base_url: str | None = None,
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.renderer = renderer
        self.base_url = base_url.rstrip("/") if base_url else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _host_header(scope)
        allowed = self.allowed
        if not allowed.open and not allowed.allows(host) and not scope["path"].startswith(_EXEMPT):
            await self._refuse(scope, send, host)
            return
        if kind == "websocket" or host is None:
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                if any(n.lower() in _URL_HEADERS for n, _ in headers):
                    own = f"{scope.get('scheme', 'http')}://{host}".encode("latin-1")
                    base = self.base_url.encode()
                    message["headers"] = [
                        (n, _rebased(v, own, base) if n.lower() in _URL_HEADERS else v)
                        for n, v in headers
                    ]
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _refuse(self, scope: Scope, send: Send, host: str | None) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if host is None:
            detail = "send exactly one Host header"
        else:
            detail = "this service does not answer for the host the request names"
        status, headers, body = self.renderer.raw(
            INVALID_HOST, detail=detail, instance=scope.get("path")
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _rebased(value: bytes, own: bytes, base: bytes) -> bytes:
    """``value`` with the request's own ``scheme://host`` replaced by ``base`` (or dropped)."""
    if value.lower().startswith(own.lower()):
        rest = value[len(own) :]
        if not rest or rest[:1] in (b"/", b"?", b"#"):
            return base + (rest or b"/")
    return value


def _checked_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an absolute http(s) URL: {base_url!r}")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"a base URL has no query, fragment or credentials: {base_url!r}")
    return base_url.rstrip("/")


def base_url_from_settings(settings: Settings) -> str | None:
    """``LMS_PUBLIC_BASE_URL`` checked, without a trailing slash.

    Raises:
        SettingsError: it is not an absolute ``http(s)`` URL without query,
            fragment or credentials.
    """
    if settings.public_base_url is None:
        return None
    try:
        return _checked_base_url(settings.public_base_url)
    except ValueError as exc:
        raise SettingsError([("LMS_PUBLIC_BASE_URL", str(exc))]) from None


def install_public_base_url(app: FastAPI, base_url: str | None) -> None:
    """Make :func:`public_url` build links on ``base_url`` in ``app`` (the service does this).

    Raises:
        ValueError: ``base_url`` is not an absolute ``http(s)`` URL without
            query, fragment or credentials.
    """
    setattr(app.state, STATE_KEY, None if base_url is None else _checked_base_url(base_url))


def public_base_url(app: object) -> str | None:
    """The public base URL installed in ``app``, if any."""
    state = getattr(app, "state", None)
    found = getattr(state, STATE_KEY, None) if state is not None else None
    return found if isinstance(found, str) else None


def public_url(scope: Scope, path: str, query: str = "") -> str:
    """A link to ``path`` (and ``query``) for the answer to the request of ``scope``.

    The configured public base URL plus the path, or the path alone (a
    relative reference): never the request's ``Host``.

    Example:
        >>> public_url({"type": "http"}, "/v1/courses", "limit=20")
        '/v1/courses?limit=20'
    """
    base = public_base_url(scope.get("app")) or ""
    path = quote(path, safe=_PATH_SAFE)
    return f"{base}{path}?{query}" if query else f"{base}{path}"
