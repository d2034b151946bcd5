"""API versioning: the major version in the path, deprecation and sunset.

``/v1/...`` and ``/v2/...`` live side by side as versioned routers. A
deprecated version (or a single deprecated route) answers with the
``Deprecation`` header of RFC 9745 (``@<unix seconds>``), the ``Sunset``
header of RFC 8594 (an HTTP-date) and ``Link`` headers pointing at the
migration guide. The headers are computed once per route, at the first
request it serves, never per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi import APIRouter

__all__ = ["Deprecation", "DeprecationRules", "versioned_router"]


@dataclass(frozen=True, slots=True)
class Deprecation:
    """When a version or route was deprecated and when it goes away.

    Attributes:
        at: when it was (or will be) deprecated; timezone-aware.
        sunset: when it stops being served; timezone-aware, optional.
        link: URL of the migration guide, optional.
    """

    at: datetime
    sunset: datetime | None = None
    link: str | None = None

    def __post_init__(self) -> None:
        for name in ("at", "sunset"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"Deprecation.{name} must be timezone-aware")
        if self.sunset is not None and self.sunset < self.at:
            raise ValueError("Deprecation.sunset must not be before Deprecation.at")

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The raw response headers announcing this deprecation."""
        out = [(b"deprecation", f"@{int(self.at.timestamp())}".encode())]
        if self.sunset is not None:
            out.append(
                (b"sunset", format_datetime(self.sunset.astimezone(UTC), usegmt=True).encode())
            )
        if self.link is not None:
            out.append((b"link", f'<{self.link}>; rel="deprecation"'.encode()))
        return out


class DeprecationRules:
    """Path prefixes (a version, a route) mapped to their deprecation."""

    def __init__(self) -> None:
        self._rules: list[tuple[str, Deprecation]] = []

    def add(self, prefix: str, deprecation: Deprecation) -> None:
        """Deprecate every route whose template is ``prefix`` or under it."""
        if not prefix.startswith("/"):
            raise ValueError(f"a deprecated path must start with '/', got {prefix!r}")
        self._rules.append((prefix.rstrip("/") or "/", deprecation))
        # the most specific rule wins
        self._rules.sort(key=lambda rule: len(rule[0]), reverse=True)

    def match(self, template: str) -> Deprecation | None:
        """The deprecation applying to a route template, if any."""
        for prefix, deprecation in self._rules:
            if template == prefix or template.startswith(prefix + "/"):
                return deprecation
        return None

    def headers_for_route(self, route: object) -> list[tuple[bytes, bytes]]:
        """Headers for a matched route object (used by the request middleware)."""
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if not isinstance(template, str):
            return []
        deprecation = self.match(template)
        return deprecation.headers() if deprecation is not None else []

    def __bool__(self) -> bool:
        return bool(self._rules)


def versioned_router(major: int, **kwargs: Any) -> APIRouter:
    """An ``APIRouter`` whose routes live under ``/v<major>``.

    Args:
        major: the API's major version (1, 2, ...).
        **kwargs: passed to :class:`fastapi.APIRouter` (tags, dependencies).

    Raises:
        ValueError: ``major`` is not a positive integer.
    """
    if isinstance(major, bool) or not isinstance(major, int) or major < 1:
        raise ValueError(f"an API major version is a positive integer, got {major!r}")
    return APIRouter(prefix=f"/v{major}", **kwargs)
