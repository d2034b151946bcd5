"""API standards: problems, paging, versioning, health, limits, OpenAPI."""

from lms_shared.http.health import CheckResult, HealthRegistry, HealthReport
from lms_shared.http.limits import BodyLimitMiddleware, PayloadTooLarge, TimeoutMiddleware
from lms_shared.http.openapi import problem_responses
from lms_shared.http.paging import (
    Page,
    PageLinks,
    PageParams,
    decode_cursor,
    encode_cursor,
    page_params,
    paginate,
)
from lms_shared.http.problems import (
    PROBLEM_CONTENT_TYPE,
    FieldError,
    Problem,
    ProblemRenderer,
    validation_errors,
)
from lms_shared.http.request import REQUEST_ID_HEADER, RequestMiddleware, valid_request_id
from lms_shared.http.versioning import Deprecation, versioned_router

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "REQUEST_ID_HEADER",
    "BodyLimitMiddleware",
    "CheckResult",
    "Deprecation",
    "FieldError",
    "HealthRegistry",
    "HealthReport",
    "Page",
    "PageLinks",
    "PageParams",
    "PayloadTooLarge",
    "Problem",
    "ProblemRenderer",
    "RequestMiddleware",
    "TimeoutMiddleware",
    "decode_cursor",
    "encode_cursor",
    "page_params",
    "paginate",
    "problem_responses",
    "valid_request_id",
    "validation_errors",
    "versioned_router",
]
