"""CORS from settings, checked once, for Starlette's (pure ASGI) CORSMiddleware.

Browsers only let pages of the listed origins call the service. The
settings are checked when the service is built: an origin must be
``scheme://host[:port]`` (no path, no trailing slash), and the wildcard
``*`` is refused together with credentials (the CORS spec forbids it, and
reflecting any origin with cookies would hand every site the user's
session).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lms_shared.errors import SettingsError
from lms_shared.settings import Settings

__all__ = ["EXPOSED_HEADERS", "CorsPolicy"]

EXPOSED_HEADERS = (
    "ratelimit",
    "ratelimit-policy",
    "retry-after",
    "x-request-id",
    "deprecation",
    "sunset",
    "link",
    "etag",
    "location",
)
"""Response headers a browser page may read (rate limits, request id, paging...)."""


def _check_origin(origin: str) -> str | None:
    if origin == "*":
        return None
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"{origin!r} is not scheme://host[:port]"
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return f"{origin!r} must not have a path, query or user info"
    return None


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Which browser origins may call the service, and how.

    Attributes:
        origins: allowed origins, or ``("*",)``.
        allow_credentials: browsers may send cookies and ``Authorization``.
        methods: allowed methods.
        headers: allowed request headers.
        max_age: seconds a preflight answer may be cached.
        expose_headers: response headers readable by the page.
    """

    origins: tuple[str, ...]
    allow_credentials: bool = False
    methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
    headers: tuple[str, ...] = ("authorization", "content-type", "x-request-id", "if-match")
    max_age: int = 600
    expose_headers: tuple[str, ...] = EXPOSED_HEADERS

    def __post_init__(self) -> None:
        problems = [p for p in map(_check_origin, self.origins) if p]
        if "*" in self.origins and self.allow_credentials:
            problems.append("the wildcard origin '*' cannot be combined with credentials")
        if "*" in self.origins and len(self.origins) > 1:
            problems.append("'*' must be the only origin when used")
        if problems:
            raise SettingsError([("LMS_CORS_ORIGINS", p) for p in problems])

    @classmethod
    def from_settings(cls, settings: Settings) -> CorsPolicy | None:
        """The policy of ``LMS_CORS_*``; ``None`` when no origin is configured.

        Raises:
            SettingsError: naming ``LMS_CORS_ORIGINS``.
        """
        if not settings.cors_origins:
            return None
        return cls(
            origins=tuple(o.rstrip("/") if o != "*" else o for o in settings.cors_origins),
            allow_credentials=settings.cors_allow_credentials,
            methods=tuple(m.upper() for m in settings.cors_allow_methods),
            headers=tuple(h.lower() for h in settings.cors_allow_headers),
            max_age=settings.cors_max_age,
        )

    def middleware_options(self) -> dict[str, Any]:
        """Keyword arguments for ``app.add_middleware(CORSMiddleware, **options)``."""
        return {
            "allow_origins": list(self.origins),
            "allow_credentials": self.allow_credentials,
            "allow_methods": list(self.methods),
            "allow_headers": list(self.headers),
            "expose_headers": list(self.expose_headers),
            "max_age": self.max_age,
        }
