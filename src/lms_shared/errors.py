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
            └── NotReady          not ready, for a reason safe to show in probes

A ``ProblemError`` raised anywhere in a request (route, dependency, event
handler called from a route) becomes an ``application/problem+json``
response with its code's ``type`` URI, title and status.

Problem codes are data: each capability declares its :class:`ErrorCode`
constants and lists them in a ``PROBLEMS`` tuple of its ``_errors``
module; nothing registers itself at import. The service factory assembles
one frozen :class:`Catalogue` from the capabilities it wires (and the
service's own codes) and hands it to the problem renderer and to OpenAPI,
so a service's documents never depend on which modules happened to be
imported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

__all__ = [
    "PROBLEMS",
    "BadRequest",
    "Catalogue",
    "ComponentError",
    "ConfigurationError",
    "Conflict",
    "ErrorCode",
    "LmsError",
    "NotFound",
    "NotReady",
    "PreconditionFailed",
    "ProblemError",
    "ServiceUnavailable",
    "SettingsError",
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


_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One problem type: a stable code, its HTTP status and its title.

    Attributes:
        slug: stable machine-readable code, also the last segment of the
            problem ``type`` URI (``.../problems/<slug>``).
        status: the HTTP status code (400-599).
        title: a short, human-readable summary that never changes per
            occurrence (RFC 9457 section 3.1.3).
        registered_type: the ``type`` URI when the problem type is
            registered elsewhere (the IANA HTTP Problem Types registry);
            ``None`` means the service's base URI plus the slug.

    Raises:
        ValueError: the slug is not lower-case words joined by dashes, or
            the status is not an error status.
    """

    slug: str
    status: int
    title: str
    registered_type: str | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"problem status must be 4xx or 5xx, got {self.status}")
        if not _SLUG.match(self.slug):
            raise ValueError(f"a problem code is lower-case words joined by dashes: {self.slug!r}")


BAD_REQUEST = ErrorCode("bad-request", 400, "Bad request")
MALFORMED_JSON = ErrorCode("malformed-json", 400, "Malformed JSON body")
INVALID_CURSOR = ErrorCode("invalid-cursor", 400, "Invalid pagination cursor")
UNAUTHORIZED = ErrorCode("unauthorized", 401, "Authentication required")
FORBIDDEN = ErrorCode("forbidden", 403, "Permission denied")
NOT_FOUND = ErrorCode("not-found", 404, "Resource not found")
METHOD_NOT_ALLOWED = ErrorCode("method-not-allowed", 405, "Method not allowed")
NOT_ACCEPTABLE = ErrorCode("not-acceptable", 406, "Not acceptable")
CONFLICT = ErrorCode("conflict", 409, "Conflict")
PRECONDITION_FAILED = ErrorCode("precondition-failed", 412, "Precondition failed")
PAYLOAD_TOO_LARGE = ErrorCode("payload-too-large", 413, "Request body too large")
UNSUPPORTED_MEDIA_TYPE = ErrorCode("unsupported-media-type", 415, "Unsupported media type")
VALIDATION_ERROR = ErrorCode("validation-error", 422, "Request validation failed")
RATE_LIMITED = ErrorCode(
    "rate-limited",
    429,
    "Quota exceeded",
    # draft-ietf-httpapi-ratelimit-headers registers this type (with "violated-policies")
    "https://iana.org/assignments/http-problem-types#quota-exceeded",
)
INTERNAL_ERROR = ErrorCode("internal-error", 500, "Internal server error")
SERVICE_UNAVAILABLE = ErrorCode("service-unavailable", 503, "Service unavailable")
TIMEOUT = ErrorCode("timeout", 504, "Request timed out")

PROBLEMS: tuple[ErrorCode, ...] = (
    BAD_REQUEST,
    MALFORMED_JSON,
    INVALID_CURSOR,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    NOT_ACCEPTABLE,
    CONFLICT,
    PRECONDITION_FAILED,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION_ERROR,
    RATE_LIMITED,
    INTERNAL_ERROR,
    SERVICE_UNAVAILABLE,
    TIMEOUT,
)
"""The problem codes every service answers with (HTTP-level errors)."""


class Catalogue(Mapping[str, ErrorCode]):
    """A frozen set of problem codes by slug, assembled once per service.

    Args:
        *groups: iterables of codes (each capability's ``PROBLEMS``); the
            same code may appear in several groups.

    Raises:
        ValueError: two different codes share a slug.
    """

    __slots__ = ("_by_slug", "_by_status")

    def __init__(self, *groups: Iterable[ErrorCode]) -> None:
        by_slug: dict[str, ErrorCode] = {}
        for group in groups:
            for code in group:
                existing = by_slug.setdefault(code.slug, code)
                if existing != code:
                    raise ValueError(
                        f"problem code {code.slug!r} is declared twice: {existing} and {code}"
                    )
        self._by_slug = dict(sorted(by_slug.items()))
        # the generic code of each status: the core codes first, then the rest
        by_status: dict[int, ErrorCode] = {code.status: code for code in reversed(PROBLEMS)}
        for code in self._by_slug.values():
            by_status.setdefault(code.status, code)
        self._by_status = by_status

    def __getitem__(self, slug: str) -> ErrorCode:
        return self._by_slug[slug]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_slug)

    def __len__(self) -> int:
        return len(self._by_slug)

    def for_status(self, status: int) -> ErrorCode:
        """The generic code of an HTTP error status.

        A status nothing declares gets a one-off code (``http-418``, titled
        with the status's reason phrase) that is not added to the catalogue.
        """
        code = self._by_status.get(status)
        if code is not None:
            return code
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "HTTP error"
        return ErrorCode(f"http-{status}", status, title)


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


class NotReady(ServiceUnavailable):
    """503: not ready, for a reason written for operators and clients alike.

    Readiness reports are public, so they show why a check failed only when
    it raised this: the message must name settings or states, never hosts,
    file paths, exception text or secrets. Any other exception (``LmsError``
    included) shows as a bare failure, its message going to the log only.
    """
