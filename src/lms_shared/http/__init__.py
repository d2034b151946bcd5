"""All the ASGI and FastAPI glue: API standards and the HTTP side of every capability.

The capabilities below this floor know nothing of HTTP; this package is
where they meet a request. Modules, each named for what it holds:

* problems and errors: :mod:`~lms_shared.http.problems` (RFC 9457),
  :mod:`~lms_shared.http.openapi` (OpenAPI 3.1 with the shared components);
* request handling: :mod:`~lms_shared.http.request` (request id, access
  log, drain, last-resort 500), :mod:`~lms_shared.http.guards` (body-size
  and timeout guards), :mod:`~lms_shared.http.health` (probes);
* API shape: :mod:`~lms_shared.http.paging`, :mod:`~lms_shared.http.query`
  (list filters from a ``QuerySpec``; imports the database layer, so it is
  not re-exported here), :mod:`~lms_shared.http.versioning`,
  :mod:`~lms_shared.http.fields` (sparse fieldsets),
  :mod:`~lms_shared.http.patch` (merge-patch bodies),
  :mod:`~lms_shared.http.conditional` (ETag / If-Match),
  :mod:`~lms_shared.http.idempotency` (Idempotency-Key);
* auth: :mod:`~lms_shared.http.auth` (``require``),
  :mod:`~lms_shared.http.auth_middleware`,
  :mod:`~lms_shared.http.token_routes` (JWKS and token endpoints);
* rate limits: :mod:`~lms_shared.http.ratelimit` (middleware, ``limit``,
  ``exempt``), :mod:`~lms_shared.http.ratelimit_dependency`
  (``rate_limited``, ``rate_check``), :mod:`~lms_shared.http.client_keys`;
* security: :mod:`~lms_shared.http.security_headers` (OWASP),
  :mod:`~lms_shared.http.cors`, :mod:`~lms_shared.http.proxies` (trusted
  forwarding headers).
"""

from lms_shared.http.auth import optional_principal, require
from lms_shared.http.auth_middleware import AuthMiddleware
from lms_shared.http.client_keys import (
    KeyFunc,
    api_key_key,
    client_ip_key,
    key_chain,
    principal_key,
)
from lms_shared.http.conditional import IfMatch, Precondition, check_if_match, etag, set_etag
from lms_shared.http.cors import CorsPolicy
from lms_shared.http.fields import FieldSet, SparseFields
from lms_shared.http.guards import BodyLimitMiddleware, PayloadTooLarge, TimeoutMiddleware
from lms_shared.http.health import CheckResult, HealthRegistry, HealthReport
from lms_shared.http.idempotency import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    Idempotency,
    IdempotentRequest,
)
from lms_shared.http.openapi import problem_responses
from lms_shared.http.paging import Page, PageLinks, page_params
from lms_shared.http.patch import MergePatch
from lms_shared.http.problems import PROBLEM_CONTENT_TYPE, FieldError, Problem, ProblemRenderer
from lms_shared.http.proxies import TrustedProxies
from lms_shared.http.ratelimit import RateLimitMiddleware, RouteLimit, exempt, limit
from lms_shared.http.ratelimit_dependency import RateCheck, rate_check, rate_limited
from lms_shared.http.request import REQUEST_ID_HEADER, RequestMiddleware, valid_request_id
from lms_shared.http.security_headers import OWASP_HEADERS, SecurityHeadersMiddleware
from lms_shared.http.token_routes import ServiceClients, jwks_router, token_router
from lms_shared.http.versioning import Deprecation, versioned_router

__all__ = [
    "IDEMPOTENCY_HEADER",
    "OWASP_HEADERS",
    "PROBLEM_CONTENT_TYPE",
    "REPLAYED_HEADER",
    "REQUEST_ID_HEADER",
    "AuthMiddleware",
    "BodyLimitMiddleware",
    "CheckResult",
    "CorsPolicy",
    "Deprecation",
    "FieldError",
    "FieldSet",
    "HealthRegistry",
    "HealthReport",
    "Idempotency",
    "IdempotentRequest",
    "IfMatch",
    "KeyFunc",
    "MergePatch",
    "Page",
    "PageLinks",
    "PayloadTooLarge",
    "Precondition",
    "Problem",
    "ProblemRenderer",
    "RateCheck",
    "RateLimitMiddleware",
    "RequestMiddleware",
    "RouteLimit",
    "SecurityHeadersMiddleware",
    "ServiceClients",
    "SparseFields",
    "TimeoutMiddleware",
    "TrustedProxies",
    "api_key_key",
    "check_if_match",
    "client_ip_key",
    "etag",
    "exempt",
    "jwks_router",
    "key_chain",
    "limit",
    "optional_principal",
    "page_params",
    "principal_key",
    "problem_responses",
    "rate_check",
    "rate_limited",
    "require",
    "set_etag",
    "token_router",
    "valid_request_id",
    "versioned_router",
]
