"""Service settings, read once at the edge from ``LMS_*`` variables.

Sources, highest priority first: keyword overrides, environment variables,
a ``.env`` file in the working directory, then one file per secret in the
folder named by ``LMS_SECRETS_DIR`` (Kubernetes and Docker secrets). The
service factory reads them once and hands small frozen values inward; no
library module imports a global settings object.

Every infrastructure concern has one URL; unset, it falls back to an
embedded backend under ``LMS_STATE_DIR`` (``./.lms``) that needs nothing
installed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from lms_shared.errors import SettingsError
from lms_shared.redaction import MASK, SECRET_MARKERS, redact_url

__all__ = ["Settings", "load_settings"]

Seconds = Annotated[float, Field(gt=0, le=3600)]
TokenAlgorithm = Literal["RS256", "PS256", "ES256", "EdDSA", "Ed25519", "HS256"]
_ASYMMETRIC: tuple[TokenAlgorithm, ...] = ("RS256", "PS256", "ES256", "EdDSA", "Ed25519")


_DNS_LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class BreakerTarget(BaseModel):
    """Circuit-breaker knobs for calls to one service (Resilience4j's names and meaning)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_rate_threshold: Annotated[float, Field(gt=0, le=100)] | None = None
    slow_call_rate_threshold: Annotated[float, Field(gt=0, le=100)] | None = None
    slow_call_duration_threshold: Annotated[float, Field(gt=0, le=3600)] | None = None
    sliding_window_size: Annotated[int, Field(ge=1, le=100_000)] | None = None
    minimum_number_of_calls: Annotated[int, Field(ge=1, le=100_000)] | None = None
    wait_duration_in_open_state: Annotated[float, Field(gt=0, le=3600)] | None = None
    permitted_number_of_calls_in_half_open_state: Annotated[int, Field(ge=1, le=1000)] | None = None


class ClientTarget(BaseModel):
    """Overrides of the client settings for calls to one service (``LMS_CLIENT_TARGETS``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    timeout: Seconds | None = None
    retries: Annotated[int, Field(ge=0, le=10)] | None = None
    hedge_delay: Annotated[float, Field(gt=0, le=60)] | None = None
    max_concurrent: Annotated[int, Field(ge=1, le=100_000)] | None = None
    breaker: BreakerTarget | None = None


class Settings(BaseSettings):
    """Every setting a service reads, with its ``LMS_`` variable name.

    Attributes:
        env: deployment environment; ``production`` turns on strict checks.
        state_dir: folder of the embedded backends (SQLite files, event logs).
        log_level: minimum level of log lines.
        log_format: ``json`` (one object a line) or ``console`` (for people).
        log_levels: minimum level per logger (JSON: ``{"sqlalchemy.engine":
            "warning", "lms.access": "info"}``); a logger's children follow it.
        log_ship: also keep every line centrally (OTLP to ``telemetry_url``,
            else the embedded store of ``state_dir``); off when something
            else collects standard output (a node agent, a sidecar).
        telemetry_url: an OpenTelemetry collector's OTLP/HTTP base URL; unset
            keeps spans (and logs) in the state folder.
        trace_sample_ratio: the share of new traces recorded (0 to 1);
            a caller's decision is kept for its traces.
        trace_queue_size: finished spans waiting for export at most; beyond,
            spans are dropped and counted, never waited for.
        trace_b3: write B3 headers beside W3C ``traceparent`` on outgoing calls.
        database_url: SQLAlchemy URL; unset means SQLite in ``state_dir``.
        discovery_url: registry URL; unset means a SQLite registry in ``state_dir``.
        ratelimit_url: rate-limit storage URL; unset means memory.
        events_url: event transport URL (``nats://``, ``amqp://``, ``redis://``,
            ``memory://``); unset means the embedded log in ``state_dir``.
        discovery_ttl: seconds this instance's registration lives without
            a renewal (lease/heartbeat, renewed every third of it).
        discovery_poll: seconds between polls of registries without a watch.
        discovery_timeout: seconds one registry request may take.
        discovery_balancer: policy for calls without an affinity key.
        discovery_zone: this instance's zone; calls prefer instances there.
        discovery_address: address other services reach this instance at;
            unset means it does not register itself.
        discovery_port: the port that goes with ``discovery_address``.
        discovery_failures: failed calls in a row that eject an instance.
        discovery_ejection: seconds of an instance's first ejection.
        client_timeout: seconds a call to another service may take in all
            (attempts and backoff), unless the request's deadline is shorter.
        client_retries: retries of a failed idempotent call (0: none).
        client_mesh: ``istio`` or ``linkerd``: the sidecar balances and
            retries; the client calls the service's DNS name once.
        client_mesh_namespace: Kubernetes namespace of the called services
            under a mesh (``name.namespace.svc.cluster.local``); unset: ``name``.
        client_targets: per called service, overrides of the above, its
            circuit breaker's knobs included (``"breaker": {"minimum_number_of_calls":
            5, "wait_duration_in_open_state": 10}``) (JSON:
            ``{"grading": {"timeout": 2, "retries": 0}}``).
        request_timeout: seconds a request may take before a 504 problem.
        max_body_bytes: largest request body accepted before a 413 problem.
        component_timeout: seconds each component may take to start or stop.
        drain_timeout: seconds shutdown waits for in-flight requests.
        health_check_timeout: seconds each readiness check may take.
        problem_base_uri: prefix of every problem ``type`` URI.
        docs_enabled: serve ``/docs`` and ``/openapi.json``.
        gc_freeze: once started, freeze the objects alive then out of the
            garbage collector's full collections (:mod:`lms_shared.gcfreeze`:
            a ~100 ms pause each otherwise).
        secret_key: the service's own signing secret, if it has one.
        database_replica_urls: read replicas (JSON list of URLs); read-only
            transactions go to them in turn.
        database_schema: PostgreSQL schema (``search_path``) of the service.
        database_pool_size: connections kept open in the pool.
        database_max_overflow: extra connections opened under load.
        database_pool_timeout: seconds to wait for a pooled connection
            before a 503 ``database-busy`` problem.
        database_pool_recycle: seconds after which a connection is replaced.
        database_pool_pre_ping: test each connection as it leaves the pool.
        database_connect_timeout: seconds one connection attempt may take.
        database_statement_timeout: seconds one statement may run
            (PostgreSQL ``statement_timeout``).
        database_busy_timeout: seconds SQLite waits for another writer.
        database_connect_retries: connection attempts at start-up and after
            the connection is lost, before ``DatabaseUnavailable``.
        database_retry_attempts: attempts of a unit of work that hits a
            serialization failure or deadlock.
        database_retry_backoff: first backoff delay (seconds); doubles per retry.
        database_migrate_on_start: apply the service's migrations at start-up.
        database_fail_fast: refuse to start when the database is unreachable
            (otherwise start and report not ready).
        encryption_keys: AES-256 keyring for field encryption,
            ``"kid:base64key,kid2:base64key"``; the first key is current.
        key_encryption_key: key-encryption keyring (same format) wrapping
            the per-record data keys of envelope encryption.
        trusted_proxies: IPs/CIDRs (JSON list) whose ``X-Forwarded-For`` /
            ``X-Forwarded-Proto`` / ``Forwarded`` headers are believed.
        public_base_url: the service's URL as clients reach it
            (``https://api.example.org``); links are built on it, or relative
            when unset; never from the request's ``Host``.
        allowed_hosts: hosts (JSON list: names, ``*.domain``, IPs) the
            service answers for; others get a 400 problem. Empty means any
            (development); required in production.
        cors_origins: origins (JSON list) allowed to call from a browser.
        cors_allow_credentials: let browsers send cookies/credentials.
        cors_allow_methods: methods allowed cross-origin.
        cors_allow_headers: request headers allowed cross-origin.
        cors_max_age: seconds a browser may cache a preflight answer.
        security_headers: send the OWASP secure headers on every response.
        content_security_policy: replaces the default CSP of API responses.
        hsts_max_age: ``Strict-Transport-Security`` max-age (0 turns it off);
            two years, as the OWASP Secure Headers Project recommends.
        ratelimit_default: default limit of every route (``"100/minute"``);
            unset means only routes with their own limit are limited.
        ratelimit_by: what identifies a client, first match wins.
        ratelimit_on_error: admit (``allow``) or refuse (``deny``, 503)
            requests while the rate-limit storage is unreachable.
        auth_issuer: the exact ``iss`` of accepted tokens (identity's URL).
        auth_audience: ``aud`` values this service accepts (JSON list);
            empty means the service's name.
        auth_algorithms: accepted token algorithms; ``HS256`` only alone.
        auth_jwks_url: the identity service's JWKS document.
        auth_jwks_refresh: seconds between background JWKS refreshes.
        auth_hs256_secret: shared HS256 secret (>= 32 bytes), instead of a
            JWKS; never beside asymmetric keys.
        auth_leeway: seconds of clock skew tolerated on exp/nbf/iat.
        auth_max_token_bytes: longer bearer tokens are refused unread.
        auth_token_cache_size: verified tokens cached (0 turns it off).
        auth_roles: role to permission patterns (JSON object), replacing
            or adding to the LMS defaults.
        auth_access_token_ttl: lifetime of access tokens this service issues.
        auth_service_token_ttl: lifetime of service-to-service tokens.
        auth_token_url: identity's client-credentials token endpoint.
        auth_client_id: this service's client id; its name by default.
        auth_client_secret: this service's client secret.
        auth_clients: (identity) client id to secret of each service (JSON).
        auth_signing_keys: (identity) PEM private keys (JSON list), current first.
        auth_api_key_prefix: first part of the API keys this service makes.
        metrics_enabled: serve ``/metrics`` (Prometheus) and measure every request.
        metrics_buckets: request-duration histogram boundaries in seconds
            (JSON list); empty means OpenTelemetry's HTTP defaults.
        metrics_latency_threshold: the latency SLO threshold (seconds), added
            to the buckets so the SLO can be computed from them.
        slow_request_threshold: requests slower than this (seconds) log a
            ``slow request`` line with their trace id; 0 turns it off.
    """

    model_config = SettingsConfigDict(
        env_prefix="LMS_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    env: Literal["development", "test", "production"] = "development"
    state_dir: Path = Path(".lms")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    log_levels: dict[str, str] = Field(default_factory=dict)
    log_ship: bool = True
    telemetry_url: str | None = None
    trace_sample_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    trace_queue_size: Annotated[int, Field(ge=1, le=1_000_000)] = 2048
    trace_b3: bool = True

    database_url: str | None = None
    discovery_url: str | None = None
    ratelimit_url: str | None = None
    events_url: str | None = None
    discovery_ttl: Seconds = 10.0
    discovery_poll: Seconds = 2.0
    discovery_timeout: Seconds = 5.0
    discovery_balancer: Literal["round_robin", "random", "least_outstanding", "p2c_ewma"] = (
        "p2c_ewma"
    )
    discovery_zone: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")] | None = (
        None
    )
    discovery_address: str | None = None
    discovery_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    discovery_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    discovery_ejection: Seconds = 30.0
    client_timeout: Seconds = 10.0
    client_retries: Annotated[int, Field(ge=0, le=10)] = 2
    client_mesh: Literal["none", "istio", "linkerd"] = "none"
    client_mesh_namespace: Annotated[str, Field(pattern=_DNS_LABEL)] | None = None
    client_targets: dict[str, ClientTarget] = Field(default_factory=dict)

    request_timeout: Seconds = 30.0
    max_body_bytes: Annotated[int, Field(gt=0, le=1 << 30)] = 1 << 20
    component_timeout: Seconds = 10.0
    drain_timeout: Seconds = 10.0
    health_check_timeout: Seconds = 2.0
    problem_base_uri: str = "https://lms.example.org/problems/"
    docs_enabled: bool = True
    gc_freeze: bool = True

    secret_key: SecretStr | None = None

    database_replica_urls: list[str] = Field(default_factory=list)
    database_schema: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] | None = None
    database_pool_size: Annotated[int, Field(ge=1, le=1000)] = 5
    database_max_overflow: Annotated[int, Field(ge=0, le=1000)] = 10
    database_pool_timeout: Seconds = 5.0
    database_pool_recycle: Seconds = 1800.0
    database_pool_pre_ping: bool = True
    database_connect_timeout: Seconds = 5.0
    database_statement_timeout: Seconds = 30.0
    database_busy_timeout: Seconds = 5.0
    database_connect_retries: Annotated[int, Field(ge=1, le=100)] = 5
    database_retry_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    database_retry_backoff: Seconds = 0.05
    database_migrate_on_start: bool = False
    database_fail_fast: bool = True

    encryption_keys: SecretStr | None = None
    key_encryption_key: SecretStr | None = None
    trusted_proxies: list[str] = Field(default_factory=list)
    public_base_url: str | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    cors_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    cors_allow_methods: list[str] = Field(
        default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE"]
    )
    cors_allow_headers: list[str] = Field(
        default_factory=lambda: ["authorization", "content-type", "x-request-id", "if-match"]
    )
    cors_max_age: Annotated[int, Field(ge=0, le=86400)] = 600
    security_headers: bool = True
    content_security_policy: str | None = None
    hsts_max_age: Annotated[int, Field(ge=0, le=63072000)] = 63072000
    ratelimit_default: str | None = None
    ratelimit_by: list[Literal["principal", "api_key", "ip"]] = ["principal", "ip"]
    ratelimit_on_error: Literal["allow", "deny"] = "allow"

    auth_issuer: str | None = None
    auth_audience: list[str] = Field(default_factory=list)
    auth_algorithms: list[TokenAlgorithm] = Field(default_factory=lambda: list(_ASYMMETRIC))
    auth_jwks_url: str | None = None
    auth_jwks_refresh: Seconds = 300.0
    auth_hs256_secret: SecretStr | None = None
    auth_leeway: Annotated[float, Field(ge=0, le=300)] = 30.0
    auth_max_token_bytes: Annotated[int, Field(ge=256, le=65536)] = 8192
    auth_token_cache_size: Annotated[int, Field(ge=0, le=1_000_000)] = 10_000
    auth_roles: dict[str, list[str]] = Field(default_factory=dict)
    auth_access_token_ttl: Seconds = 900.0
    auth_service_token_ttl: Seconds = 300.0
    auth_token_url: str | None = None
    auth_client_id: str | None = None
    auth_client_secret: SecretStr | None = None
    auth_clients: dict[str, SecretStr] = Field(default_factory=dict)
    auth_signing_keys: list[SecretStr] = Field(default_factory=list)
    auth_api_key_prefix: Annotated[str, Field(pattern=r"^[a-z]{2,16}$")] = "lms"

    metrics_enabled: bool = True
    metrics_buckets: list[Annotated[float, Field(gt=0, le=3600)]] = Field(
        default_factory=list, max_length=64
    )
    metrics_latency_threshold: Seconds | None = None
    slow_request_threshold: Annotated[float, Field(ge=0, le=3600)] = 1.0

    @field_validator("log_levels")
    @classmethod
    def _check_log_levels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_log_levels(value)

    def redacted(self) -> dict[str, Any]:
        """The effective settings as a JSON-ready dict, secrets hidden.

        ``SecretStr`` values and fields whose name looks secret become
        ``"**********"``; passwords inside URLs are masked too.
        """
        out: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json").items():
            raw = getattr(self, name)
            if isinstance(raw, SecretStr) or (
                value is not None and any(m in name for m in SECRET_MARKERS)
            ):
                out[name] = MASK if value is not None else None
            elif name.endswith("_url") and isinstance(value, str):
                out[name] = redact_url(value)
            elif name.endswith("_urls") and isinstance(value, list):
                out[name] = [redact_url(item) for item in value]
            else:
                out[name] = value
        return out


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into a clear report.

    Args:
        **overrides: values that win over every other source (tests, CLI).

    Raises:
        SettingsError: naming each invalid ``LMS_*`` variable and why.
    """
    secrets_dir = os.environ.get("LMS_SECRETS_DIR")
    if secrets_dir is not None and not Path(secrets_dir).is_dir():
        raise SettingsError([("LMS_SECRETS_DIR", f"not a directory: {secrets_dir}")])
    try:
        if secrets_dir is not None:
            return Settings(_secrets_dir=secrets_dir, **overrides)
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except SourceError as exc:  # a JSON value (list, dict) that does not parse
        found = re.search(r'field "(\w+)"', str(exc))
        variable = f"LMS_{found.group(1).upper()}" if found else "LMS_*"
        raise SettingsError([(variable, "is not valid JSON")]) from None


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_LOGGER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")


def check_log_levels(levels: dict[str, str]) -> dict[str, str]:
    """``LMS_LOG_LEVELS`` checked: logger names to lower-case level names.

    Raises:
        ValueError: more than 200 loggers, a malformed logger name, or a
            level that is not one of :data:`LOG_LEVELS`.
    """
    if len(levels) > 200:
        raise ValueError(f"at most 200 loggers, got {len(levels)}")
    checked: dict[str, str] = {}
    for name, level in levels.items():
        if not _LOGGER_NAME.fullmatch(name):
            raise ValueError(f"logger name {name[:60]!r} is not a dotted logger name")
        if not isinstance(level, str) or level.lower() not in LOG_LEVELS:
            allowed = ", ".join(LOG_LEVELS)
            raise ValueError(f"level {str(level)[:20]!r} of logger {name!r}: not one of {allowed}")
        checked[name] = level.lower()
    return checked


def _describe(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        variable = "LMS_" + "__".join(loc).upper()
        message = err["msg"]
        secret = any(m in "_".join(loc).lower() for m in SECRET_MARKERS)
        if not secret and err.get("input") is not None and not isinstance(err["input"], dict):
            shown = repr(err["input"])
            message += f" (got {shown[:60]})"
        problems.append((variable, message))
    return problems
