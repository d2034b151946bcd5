"""One pin of every package's front door (as httpx pins its exported members).

A name added to or removed from an ``__all__`` changes this file in the same
commit, so the public surface only changes on purpose. New packages are
added here when they land (the last test fails until they are).
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import lms_shared

# packages still being built this round; pinned when their issue lands
PENDING: set[str] = set()

EXPORTS: dict[str, list[str]] = {

    "lms_shared": [
        "BadRequest", "Catalogue", "Clock", "Component", "ComponentError", "ConfigurationError",
        "Conflict", "ErrorCode", "FunctionComponent", "LmsError", "NotFound",
        "PreconditionFailed", "ProblemError", "Service", "ServiceUnavailable", "Settings",
        "SettingsError", "SystemClock", "__version__", "create_service", "load_settings",
    ],
    "lms_shared.client": [
        "BAD_GATEWAY", "ClientConfig", "Clients", "DEFAULT_BREAKER", "InvalidResponse", "Mesh",
        "PROBLEMS", "Propagator", "ServiceCallError", "ServiceClient", "ServiceUnreachable",
        "UpstreamBadRequest", "UpstreamConflict", "UpstreamNotFound",
        "UpstreamPreconditionFailed", "UpstreamUnavailable",
    ],
    "lms_shared.discovery": [
        "BACKENDS", "Balancer", "Call", "ConsistentHash", "Discovery", "DiscoveryConfig",
        "DiscoveryConfigError", "DiscoveryError", "Instance", "InvalidRegistryData",
        "LeastOutstanding", "LocalRegistry", "NoInstances", "OutlierEjection", "PROBLEMS",
        "PowerOfTwoEWMA", "Random", "Registration", "Registry", "RegistryReadOnly",
        "RegistryUnavailable", "RoundRobin", "SelfRegistration", "StaticRegistry",
        "VersionCanary", "ZonePreference", "default_balancer", "registry_from_url",
    ],
    "lms_shared.events": [
        "BATCH_CONTENT_TYPE", "CloudEvent", "Data", "DeadLetter", "DeadLetterQuery",
        "DeadLetterStore", "DeadLetterStoreUnavailable", "Delivery", "DuplicateDelivery",
        "EnvelopeLimits", "Event", "EventBus", "EventContext", "EventError", "EventRegistry",
        "EventSchemaError", "ExtensionValue", "Handler", "Inbox", "InboxEntry", "InvalidEvent",
        "InvalidEventData", "JSON_CONTENT_TYPE", "MemoryDeadLetterStore", "MemoryInbox",
        "MemoryTransport", "Message", "NO_DATA", "NoData", "OutboxRelay", "OutboxStore", "Outcome",
        "PROBLEMS", "PublishFailed", "ReplayReport", "ReplayUnsupported", "RetryPolicy",
        "SPECVERSION", "Subscription", "SubscriptionSpec", "TRANSPORTS", "TraceContext",
        "Transport", "TransportOptions", "TransportUnavailable", "UnknownEventType",
        "UnsupportedEventVersion", "Upcaster", "asyncapi", "compare_event_schemas", "current_event",
        "current_trace_context", "format_timestamp", "from_http", "from_http_batch", "from_json",
        "from_json_batch", "from_message", "is_json_content_type", "parse_timestamp",
        "replay_dead_letters", "to_http", "to_http_batch", "to_json", "to_json_batch", "to_message",
        "transport_from_url", "use_trace_context",
    ],
    "lms_shared.errors": [
        "BadRequest", "Catalogue", "ComponentError", "ConfigurationError", "Conflict",
        "ErrorCode", "LmsError", "NotFound", "NotReady", "PROBLEMS", "PreconditionFailed",
        "ProblemError", "ServiceUnavailable", "SettingsError",
    ],
    "lms_shared.clock": [
        "Clock", "SystemClock",
    ],
    "lms_shared.types": [
        "ASGIApp", "Message", "Receive", "Scope", "Send",
    ],
    "lms_shared.redaction": [
        "MASK", "PII_KEYS", "Personal", "Redactor", "SECRET_KEYS", "SECRET_MARKERS",
        "for_operators", "is_personal", "personal_fields", "redact", "redact_personal_data",
        "redact_url",
    ],
    "lms_shared.settings": [
        "Settings", "load_settings",
    ],
    "lms_shared.jsonlimits": [
        "DEFAULT_MAX_DEPTH", "JsonLimitError", "check_depth", "load_json", "scan_depth",
    ],
    "lms_shared.lifecycle": [
        "Component", "FunctionComponent", "Lifecycle",
    ],
    "lms_shared.auth": [
        "API_KEY_METADATA", "ApiKey", "ApiKeyStore", "ApiKeys", "Auth", "AuthConfig",
        "AuthenticationFailed", "Authenticator", "ClientCredentials", "DEFAULT_ALGORITHMS",
        "DEFAULT_POLICY", "DEFAULT_ROLES", "DatabaseApiKeyStore", "FetchFailed",
        "InvalidApiKey", "InvalidCredentials", "InvalidToken", "IssuedApiKey", "JwksKeys",
        "KeySource", "KeysUnavailable", "MemoryApiKeyStore", "PROBLEMS", "PermissionDenied",
        "PermissionGrant",
        "Policy", "Principal", "PrincipalKind", "ServiceTokenAuth", "SignerTokens",
        "SigningAlgorithm", "SigningKey", "StaticKeys", "TokenSigner", "TokenSource",
        "TokenUnavailable", "TokenVerifier", "VerificationKey", "VerifierConfig", "can",
        "check", "hash_api_key", "hs256_key", "key_from_jwk",
    ],
    "lms_shared.db": [
        "Condition", "ConstraintViolation", "Database", "DatabaseBusy", "DatabaseConfig",
        "DatabaseUnavailable", "InvalidFilter", "InvalidSort", "ListQuery", "MigrationError",
        "Migrations", "Model", "NAMING_CONVENTION", "OPERATORS", "PROBLEMS", "PoolStats",
        "QuerySpec", "RevisionInfo", "SoftDeleteMixin", "SortKey", "SqlIdempotencyStore",
        "StaleRead", "TenantMixin", "TenantScopeError", "TimestampMixin", "TransactionConflict",
        "UtcDateTime", "current_tenant", "idempotency_table", "model_metadata",
        "parse_database_url", "tenant_context", "upsert", "versioned_update",
    ],
    "lms_shared.http": [
        "AuthMiddleware", "BodyLimitMiddleware", "CheckResult", "CorsPolicy", "Deprecation",
        "FieldError", "FieldSet", "HealthRegistry", "HealthReport", "IDEMPOTENCY_HEADER",
        "Idempotency", "IdempotentRequest", "IfMatch", "KeyFunc", "MergePatch", "OWASP_HEADERS",
        "PROBLEM_CONTENT_TYPE", "Page", "PageLinks", "PayloadTooLarge", "Precondition",
        "Problem", "ProblemRenderer", "REPLAYED_HEADER", "REQUEST_ID_HEADER",
        "RateCheck", "RateLimitMiddleware", "RequestMiddleware", "RouteLimit",
        "SecurityHeadersMiddleware",
        "ServiceClients", "SparseFields", "TimeoutMiddleware", "TrustedProxies", "api_key_key",
        "check_if_match", "client_ip_key", "etag", "exempt", "jwks_router", "key_chain",
        "limit", "optional_principal", "page_params", "principal_key", "problem_responses",
        "rate_check", "rate_limited", "require", "set_etag", "token_router", "valid_request_id",
        "versioned_router",
    ],
    "lms_shared.models": [
        "Assignment", "AssignmentCreate", "AssignmentUpdate", "CanonicalInt", "Codec", "Course",
        "CourseCreate",
        "CourseStatus", "CourseUpdate", "DEFAULT_LIMIT", "DEFAULT_MAX_ITEMS", "DEFAULT_MAX_LENGTH",
        "ENROLLMENT_TRANSITIONS", "Email", "Enrollment", "EnrollmentCreate", "EnrollmentStatus",
        "EnrollmentUpdate", "Grade", "GradeCreate", "GradeUpdate", "Id", "IdempotencyInFlight",
        "IdempotencyKeyReused", "IdempotencyStore", "IllegalTransition", "InvalidIdempotencyKey",
        "JSON", "Lesson", "LessonCreate", "LessonKind", "LessonUpdate", "LmsModel", "LmsRecord",
        "LocaleCode", "LongText", "MAX_CURSOR_LENGTH", "MAX_LIMIT", "MERGE_PATCH_CONTENT_TYPE",
        "MSGPACK", "MalformedPatch", "MalformedPayload", "MemoryIdempotencyStore",
        "ModelValidationError", "Module", "ModuleCreate", "ModuleUpdate", "NAIVE_IS_UTC", "Name",
        "NonEmptyStr", "Organization", "OrganizationCreate", "OrganizationUpdate", "PROBLEMS",
        "PageParams", "Percentage", "PreconditionRequired", "Resource", "Role", "SchemaRegistry",
        "SchemaVersionError", "Score", "ShortText", "Slug", "StaleVersion", "Submission",
        "SubmissionCreate", "SubmissionUpdate", "Text", "Title", "UnknownFields", "Upcaster",
        "User", "UserCreate", "UserUpdate", "UtcDatetime", "WebUrl", "apply_merge_patch",
        "apply_update", "at_most", "canonical_type", "check_transition", "compare_exports",
        "decode_cursor",
        "encode_cursor", "from_row", "from_rows", "merge_patch", "not_before", "paginate",
        "parse_merge_patch", "problem_from", "shared_schemas", "to_values", "transition", "trimmed",
        "url_constraints", "validate", "validate_json", "validation_errors",
    ],
    "lms_shared.observability": [
        "HTTP_BUCKETS", "LineWriter", "LogShipper", "LogStore", "Metrics", "MetricsConfig",
        "StoredLog", "TraceParent", "Tracing", "TracingConfig", "configure_logging",
        "configure_service_logging", "current_request_id", "current_span_ids",
        "current_trace_id", "current_tracing", "get_logger", "inject_trace_context",
        "is_configured", "log_shipper", "reset_logging", "slo_buckets", "span", "traced",
    ],
    "lms_shared.ratelimit": [
        "BACKENDS", "Decision", "MemoryStorage", "PROBLEMS", "Quota", "Rate",
        "RateLimitStorage", "RateLimitUnavailable", "RateLimited", "RateLimiter", "Standing",
        "StorageUnavailable", "current_standing", "default_quota", "storage_from_url",
    ],
    "lms_shared.resilience": [
        "AdaptiveLimit", "AdaptiveMetrics", "AttemptTimeout", "Backoff", "BreakerConfig",
        "BreakerMetrics", "BreakerRegistry", "BreakerState", "BudgetMetrics", "Bulkhead",
        "BulkheadFull", "BulkheadMetrics", "CircuitBreaker", "CircuitOpen", "ClusterView",
        "ConcurrencyLimited", "Deadline", "DeadlineExceeded", "Fallback", "Hedge",
        "IDEMPOTENT_METHODS", "PROBLEMS", "RETRY_HOP_HEADER", "Resilience", "ResilienceError",
        "ResilienceTimeout", "Retry", "RetryAfter", "RetryBudget", "RetryEvent",
        "SharedBreakerState", "SharedStateUnavailable", "SlidingWindowType", "StateChange",
        "call_with_timeout", "is_idempotent_method", "may_retry", "parse_retry_after", "retry",
        "retry_after_of", "retry_hop_value", "upstream_retries",
    ],
    "lms_shared.security": [
        "Cipher", "CleanLine", "CleanText", "DecryptionError", "Envelope", "GuardedTransport",
        "HtmlSanitizer", "Identifier", "InsecureSettingsError", "Key", "Keyring",
        "LMS_HTML_ATTRIBUTES", "LMS_HTML_TAGS", "MIN_SECRET_LENGTH", "PROBLEMS",
        "PasswordHashError", "PasswordHasher", "PublicUrl", "SafeFilename", "SafeHtml",
        "SecurityError", "UnknownKeyId", "UnsafeInputError", "UnsafePathError", "UnsafeURLError",
        "UrlGuard", "check_production_settings", "clean_line", "clean_text", "decrypt_field",
        "encrypt_field", "envelope_from_settings", "field_context", "field_needs_reencrypt",
        "insecure_settings", "keyring_from_settings", "new_key_spec", "normalize_identifier",
        "reencrypt_field", "safe_filename", "safe_path", "sanitize_html", "secret_weakness",
        "strip_control_chars",
    ],
    "lms_shared.testing": [
        "AssignmentCreateFactory", "AssignmentFactory", "AssignmentUpdateFactory", "CapturedLogs",
        "CourseCreateFactory", "CourseFactory", "CourseUpdateFactory", "DEFAULT_POSTGRES_URL",
        "EnrollmentCreateFactory", "EnrollmentFactory", "EnrollmentUpdateFactory", "EventRecorder",
        "FakeIdentity", "FakeRegistry", "FakeService", "FakeServices", "GradeCreateFactory",
        "GradeFactory", "GradeUpdateFactory", "LessonCreateFactory", "LessonFactory",
        "LessonUpdateFactory", "LifespanError", "LmsFactory", "ManualClock", "MetricReader",
        "ModuleCreateFactory",
        "ModuleFactory", "ModuleUpdateFactory", "OrganizationCreateFactory", "OrganizationFactory",
        "OrganizationUpdateFactory", "RecordedSpans", "SubmissionCreateFactory",
        "SubmissionFactory", "SubmissionUpdateFactory", "UserCreateFactory", "UserFactory",
        "UserUpdateFactory", "capture_logs", "in_ci", "lifespan", "memory_bus",
        "postgres_unreachable", "read_metrics", "record_spans", "require_server",
        "rollback_database",
        "server_missing", "service_client", "tcp_unreachable",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(EXPORTS))
def test_front_door_is_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == EXPORTS[module_name]
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


def test_every_package_is_pinned() -> None:
    packages = {
        f"lms_shared.{info.name}"
        for info in pkgutil.iter_modules(lms_shared.__path__)
        if info.ispkg and info.name not in {"cli"}
    }
    unpinned = packages - set(EXPORTS) - PENDING
    assert not unpinned, f"add the front door of {sorted(unpinned)} to EXPORTS"
