"""What a call to another service raises: typed errors from problem answers.

Another service's answer is untrusted input: its problem body is read at
most ``max_problem_bytes`` and parsed through :mod:`lms_shared.jsonlimits`
(size and depth bounded); a body that is too large, too deep, not JSON or
not a problem object still gives the typed error of its status, with the
fields it could not read left out. Nothing in it reaches a ``KeyError``, a
``RecursionError`` or a 500::

    LmsError
    └── ProblemError
        └── ServiceCallError             root: .service, .received_status, .received_code, .problem
            ├── UpstreamBadRequest       400, 422          (also a BadRequest)
            ├── UpstreamNotFound         404, 410          (also a NotFound)
            ├── UpstreamConflict         409               (also a Conflict)
            ├── UpstreamPreconditionFailed 412, 428        (also a PreconditionFailed)
            ├── UpstreamUnavailable      503: it answered 401/403/407/429 or 5xx
            │   └── ServiceUnreachable   503: no answer (refused, reset, DNS)
            └── InvalidResponse          502 bad-gateway: a success that is not what was asked

Other 4xx answers are a plain :class:`ServiceCallError`. Uncaught, an
error renders as this service's own problem: a 4xx keeps the callee's
status and code (the user asked for something that is not there, or in
conflict), everything else becomes a 503 (the callee's 401 is about *our*
credentials, not the user's) or a 502. Timeouts, deadlines and open
breakers are the resilience package's :class:`~lms_shared.resilience.AttemptTimeout`,
:class:`~lms_shared.resilience.DeadlineExceeded` and
:class:`~lms_shared.resilience.CircuitOpen`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from lms_shared.errors import (
    BadRequest,
    Conflict,
    ErrorCode,
    NotFound,
    PreconditionFailed,
    ProblemError,
    ServiceUnavailable,
)
from lms_shared.jsonlimits import JsonLimitError, load_json

__all__ = [
    "BAD_GATEWAY",
    "PROBLEMS",
    "InvalidResponse",
    "ServiceCallError",
    "ServiceUnreachable",
    "UpstreamBadRequest",
    "UpstreamConflict",
    "UpstreamNotFound",
    "UpstreamPreconditionFailed",
    "UpstreamUnavailable",
    "error_for",
    "read_problem",
]

BAD_GATEWAY = ErrorCode("bad-gateway", 502, "Bad gateway")
"""A dependency answered something that is not what was asked (502)."""

PROBLEMS: tuple[ErrorCode, ...] = (BAD_GATEWAY,)

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_MAX_DETAIL = 500
_MAX_TITLE = 120
_MAX_PROBLEM_DEPTH = 8
_RETRYABLE = frozenset({429, 502, 503, 504})


class ServiceCallError(ProblemError):
    """Root of what a call to another service raises about its answer (or its silence).

    Attributes:
        service: the called service's name.
        received_status: the HTTP status it answered (``None``: no answer).
        received_code: the ``code`` of its problem, when it sent one.
        problem: its problem object as parsed (bounded; ``{}`` when unreadable).
        retry_after: seconds its ``Retry-After`` asked for, if any.
    """

    def __init__(
        self,
        service: str,
        detail: str,
        *,
        received_status: int | None = None,
        received_code: str | None = None,
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        code: ErrorCode | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.service = service
        self.received_status = received_status
        self.received_code = received_code
        self.problem: Mapping[str, Any] = dict(problem or {})
        self.retry_after = retry_after
        super().__init__(detail, code=code, headers=headers)

    @property
    def retryable(self) -> bool:
        """Whether trying again (on another instance) may succeed."""
        return False

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[ServiceCallError], state: dict[str, Any]) -> ServiceCallError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, state.get("detail"))
    return error


class UpstreamBadRequest(ServiceCallError, BadRequest):
    """The callee refused the request as malformed or invalid (400, 422)."""


class UpstreamNotFound(ServiceCallError, NotFound):
    """The callee says the resource does not exist (404, 410)."""


class UpstreamConflict(ServiceCallError, Conflict):
    """The callee says the request conflicts with the resource's state (409)."""


class UpstreamPreconditionFailed(ServiceCallError, PreconditionFailed):
    """The callee refused a conditional request (412, 428)."""


class UpstreamUnavailable(ServiceCallError, ServiceUnavailable):
    """503: the callee could not serve the call (it answered 401/403/407/429 or 5xx).

    ``retryable`` is ``True`` for 429, 502, 503 and 504 (a retry, on another
    instance, may succeed); a 500 is a bug there and is not retried.
    """

    code = ServiceUnavailable.code

    @property
    def retryable(self) -> bool:
        """Whether trying again may help (429, 502, 503, 504)."""
        return self.received_status in _RETRYABLE


class ServiceUnreachable(UpstreamUnavailable):
    """503: no answer at all: connection refused or reset, name not resolved."""

    @property
    def retryable(self) -> bool:
        """Always: the request did not get an answer."""
        return True


class InvalidResponse(ServiceCallError):
    """502 ``bad-gateway``: a success too large, too deep, not JSON or not the expected model."""

    code = BAD_GATEWAY


_BY_STATUS: dict[int, type[ServiceCallError]] = {
    400: UpstreamBadRequest,
    422: UpstreamBadRequest,
    404: UpstreamNotFound,
    410: UpstreamNotFound,
    409: UpstreamConflict,
    412: UpstreamPreconditionFailed,
    428: UpstreamPreconditionFailed,
}
_UNAVAILABLE = frozenset({401, 403, 407, 429})


def read_problem(body: bytes, *, max_bytes: int) -> dict[str, Any]:
    """The problem object of an error body, or ``{}`` when it is not a readable one.

    Bounded: larger than ``max_bytes`` or nested deeper than 8 levels is
    unreadable, as is anything but a JSON object.
    """
    try:
        document = load_json(body, max_bytes=max_bytes, max_depth=_MAX_PROBLEM_DEPTH)
    except JsonLimitError:
        return {}
    return document if isinstance(document, dict) else {}


def _text(value: object, limit: int) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= limit else value[: limit - 1] + "…"


def error_for(
    service: str,
    status: int,
    problem: Mapping[str, Any],
    *,
    retry_after: float | None = None,
) -> ServiceCallError:
    """The typed error for an error answer of ``service``.

    Args:
        service: the callee's name.
        status: the answer's status (400-599).
        problem: its problem object (:func:`read_problem`; may be ``{}``).
        retry_after: seconds its ``Retry-After`` asked for.
    """
    slug = problem.get("code")
    received_code = slug if isinstance(slug, str) and _SLUG.fullmatch(slug) else None
    detail = _text(problem.get("detail"), _MAX_DETAIL)
    if status in _UNAVAILABLE or status >= 500:
        headers = {} if retry_after is None else {"Retry-After": str(math.ceil(retry_after))}
        if retry_after is None and status in _RETRYABLE:
            headers["Retry-After"] = "1"
        return UpstreamUnavailable(
            service,
            f"the {service} service answered {status}",
            received_status=status,
            received_code=received_code,
            problem=problem,
            retry_after=retry_after,
            headers=headers,
        )
    cls = _BY_STATUS.get(status, ServiceCallError)
    title = _text(problem.get("title"), _MAX_TITLE) or f"HTTP {status}"
    # the callee's code and status, under this service's problem base URI
    code = ErrorCode(received_code or f"http-{status}", status, title)
    return cls(
        service,
        detail or f"the {service} service answered {status}",
        received_status=status,
        received_code=received_code,
        problem=problem,
        retry_after=retry_after,
        code=code,
    )
