"""The exception tree of lms-shared and the catalogue of problem types.

This module is a leaf: it imports nothing from the package, so every
capability can raise these errors and the HTTP layer can render them::

    LmsError                      root of everything the library raises
    ├── ConfigurationError        the service cannot be built as configured
    │   └── SettingsError         an LMS_* variable (or .env/secret file) is invalid
    ├── ComponentError            a component failed or timed out starting/stopping
    └── ProblemError              an error with an HTTP meaning (RFC 9457)
        ├── BadRequest            400, and the other subclasses below,
        ├── NotFound              each bound to one entry of the catalogue
        ├── Conflict
        ├── PreconditionFailed
        └── ServiceUnavailable

A ``ProblemError`` raised anywhere in a request (route, dependency, event
handler called from a route) becomes an ``application/problem+json``
response with its catalogue entry's ``type`` URI, title and status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "CATALOGUE",
    "BadRequest",
    "ComponentError",
    "ConfigurationError",
    "Conflict",
    "ErrorCode",
    "LmsError",
    "NotFound",
    "PreconditionFailed",
    "ProblemError",
    "ServiceUnavailable",
    "SettingsError",
    "error_code",
]


class LmsError(Exception):
    """Root of every exception lms-shared raises on purpose."""


class ConfigurationError(LmsError):
    """The service cannot be built with the configuration it was given."""


class SettingsError(ConfigurationError):
    """One or more settings are invalid; the message names each variable.

    Attributes:
        problems: ``(variable, message)`` pairs, e.g.
            ``("LMS_REQUEST_TIMEOUT", "Input should be a valid number")``.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {var}: {msg}" for var, msg in problems)
        super().__init__(f"invalid settings:\n{lines}")


class ComponentError(LmsError):
    """A component failed, or timed out, while starting or stopping.

    Attributes:
        component: the component's name.
        phase: ``"start"`` or ``"stop"``.
    """

    def __init__(self, component: str, phase: str, reason: str) -> None:
        self.component = component
        self.phase = phase
        super().__init__(f"component {component!r} failed to {phase}: {reason}")


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One entry of the problem catalogue.

    Attributes:
        slug: stable machine-readable code, also the last segment of the
            problem ``type`` URI (``.../problems/<slug>``).
        status: the HTTP status code.
        title: a short, human-readable summary that never changes per
            occurrence (RFC 9457 section 3.1.3).
    """

    slug: str
    status: int
    title: str


CATALOGUE: dict[str, ErrorCode] = {}


def error_code(slug: str, status: int, title: str) -> ErrorCode:
    """Register (or return the identical existing) catalogue entry.

    Args:
        slug: lower-case, dash-separated code, unique across the platform.
        status: HTTP status code (400-599).
        title: short human-readable summary.

    Raises:
        ValueError: the slug is already registered with another status or
            title, or the status is not an error status.
    """
    if not 400 <= status <= 599:
        raise ValueError(f"problem status must be 4xx or 5xx, got {status}")
    code = ErrorCode(slug, status, title)
    existing = CATALOGUE.setdefault(slug, code)
    if existing != code:
        raise ValueError(f"problem code {slug!r} is already registered as {existing}")
    return code


BAD_REQUEST = error_code("bad-request", 400, "Bad request")
MALFORMED_JSON = error_code("malformed-json", 400, "Malformed JSON body")
INVALID_CURSOR = error_code("invalid-cursor", 400, "Invalid pagination cursor")
UNAUTHORIZED = error_code("unauthorized", 401, "Authentication required")
FORBIDDEN = error_code("forbidden", 403, "Permission denied")
NOT_FOUND = error_code("not-found", 404, "Resource not found")
METHOD_NOT_ALLOWED = error_code("method-not-allowed", 405, "Method not allowed")
NOT_ACCEPTABLE = error_code("not-acceptable", 406, "Not acceptable")
CONFLICT = error_code("conflict", 409, "Conflict")
PRECONDITION_FAILED = error_code("precondition-failed", 412, "Precondition failed")
PAYLOAD_TOO_LARGE = error_code("payload-too-large", 413, "Request body too large")
UNSUPPORTED_MEDIA_TYPE = error_code("unsupported-media-type", 415, "Unsupported media type")
VALIDATION_ERROR = error_code("validation-error", 422, "Request validation failed")
RATE_LIMITED = error_code("rate-limited", 429, "Too many requests")
INTERNAL_ERROR = error_code("internal-error", 500, "Internal server error")
SERVICE_UNAVAILABLE = error_code("service-unavailable", 503, "Service unavailable")
TIMEOUT = error_code("timeout", 504, "Request timed out")


class ProblemError(LmsError):
    """An error that is answered with an RFC 9457 problem response.

    Subclasses set ``code``; the base class can be raised with any
    catalogue entry.

    Args:
        detail: explanation specific to this occurrence (safe to show to
            the client: never put internals or secrets here).
        code: catalogue entry; defaults to the class's ``code``.
        headers: extra response headers (``Retry-After``, ``Allow``, ...).
        **extensions: extra members of the problem object (RFC 9457 §3.2).
    """

    code: ClassVar[ErrorCode] = BAD_REQUEST

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: ErrorCode | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.problem_code = code or self.code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions
        super().__init__(detail or self.problem_code.title)

    @property
    def status(self) -> int:
        """The HTTP status code of this problem."""
        return self.problem_code.status


class BadRequest(ProblemError):
    """400: the request is malformed (see the catalogue for finer codes)."""

    code = BAD_REQUEST


class NotFound(ProblemError):
    """404: the resource does not exist (or the caller may not know it does)."""

    code = NOT_FOUND


class Conflict(ProblemError):
    """409: the request conflicts with the current state of the resource."""

    code = CONFLICT


class PreconditionFailed(ProblemError):
    """412: a conditional request's precondition (``If-Match``) failed."""

    code = PRECONDITION_FAILED


class ServiceUnavailable(ProblemError):
    """503: a dependency is down or the service is shutting down."""

    code = SERVICE_UNAVAILABLE
