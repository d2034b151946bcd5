"""The service factory: one call builds a configured FastAPI service.

``create_service("courses", version="1.4.0")`` reads the ``LMS_*``
settings once, builds the FastAPI app with the standard middleware, problem
handlers, health endpoints and OpenAPI document, and returns a
:class:`Service` holding one object per concern. Nothing connects at
construction: components start in the app's lifespan, in the order they
were added, and stop in reverse after in-flight requests drained.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, FastAPI
from starlette.middleware.cors import CORSMiddleware

from lms_shared import auth, errors, models, ratelimit, security
from lms_shared.auth import Auth, AuthConfig
from lms_shared.auth._authenticator import NOT_CONFIGURED
from lms_shared.client import PROBLEMS as CLIENT_PROBLEMS
from lms_shared.client import Clients, ServiceClient
from lms_shared.client.trace_harness import CLIENT_PREFIX as HARNESS_PREFIX
from lms_shared.clock import Clock, SystemClock
from lms_shared.discovery import PROBLEMS as DISCOVERY_PROBLEMS
from lms_shared.discovery import Discovery, DiscoveryConfig
from lms_shared.errors import Catalogue, ErrorCode, SettingsError
from lms_shared.events import PROBLEMS as EVENT_PROBLEMS
from lms_shared.events import EventBus
from lms_shared.gcfreeze import freeze_startup_objects
from lms_shared.http.auth import install_auth, protected_routes
from lms_shared.http.client_keys import key_chain
from lms_shared.http.cors import CorsPolicy
from lms_shared.http.deadline import DeadlineMiddleware
from lms_shared.http.guards import BodyLimitMiddleware, TimeoutMiddleware
from lms_shared.http.health import HealthRegistry, install_health
from lms_shared.http.hosts import PROBLEMS as HOST_PROBLEMS
from lms_shared.http.hosts import (
    AllowedHosts,
    HostsMiddleware,
    base_url_from_settings,
)
from lms_shared.http.methods import MethodsMiddleware
from lms_shared.http.metrics import RequestRecorder, install_metrics, readiness_of
from lms_shared.http.openapi import install_openapi
from lms_shared.http.paging import install_paging
from lms_shared.http.problems import ProblemRenderer, install_problem_handlers
from lms_shared.http.proxies import ForwardedMiddleware, TrustedProxies
from lms_shared.http.ratelimit import RateLimitMiddleware
from lms_shared.http.request import RequestMiddleware
from lms_shared.http.routes import move_behind
from lms_shared.http.security_headers import SecurityHeadersMiddleware
from lms_shared.http.state import RuntimeState
from lms_shared.http.versioning import Deprecation, DeprecationRules, versioned_router
from lms_shared.lifecycle import Component, Lifecycle
from lms_shared.observability import (
    Tracing,
    TracingConfig,
    configure_service_logging,
    get_logger,
)
from lms_shared.observability._depmap import Declarations
from lms_shared.observability._metrics import Metrics, MetricsConfig
from lms_shared.ratelimit import RateLimiter, default_quota
from lms_shared.resilience import PROBLEMS as RESILIENCE_PROBLEMS
from lms_shared.security import check_production_settings
from lms_shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from lms_shared.db import Database

__all__ = ["Service", "create_service"]

C = TypeVar("C", bound=Component)

# FastAPI's own OpenTelemetry (newer releases): the service traces and measures
# itself, so FastAPI's would double the spans and look up the global providers
# on every request
_NATIVE_TELEMETRY_OFF: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


class Service:
    """A running (or ready-to-run) LMS service: app, settings and components.

    Build it with :func:`create_service`. Attributes:

    Attributes:
        name: the service's name (``courses``).
        version: its release version (``1.4.0``).
        settings: the effective settings, read once.
        clock: the clock every component takes.
        app: the FastAPI app; serve it with ``uvicorn module:service.app``.
        router: the app's router, for routes outside a versioned router.
        health: readiness checks; components add their own.
        lifecycle: the ordered components.
        state: runtime state (started, draining, in-flight requests).
        rate_limits: the rate limiter (:class:`lms_shared.ratelimit.RateLimiter`)
            behind the rate-limit middleware, for checks made in code.
        catalogue: every problem code the service answers with (frozen;
            OpenAPI documents it).
        auth: tokens, API keys, permissions and service tokens
            (:class:`lms_shared.auth.Auth`); the first component started.
        clients: the clients of other services (:meth:`client`).
    """

    def __init__(
        self,
        name: str,
        version: str,
        settings: Settings,
        clock: Clock,
        *,
        title: str | None = None,
        description: str = "",
        problems: Sequence[ErrorCode] = (),
        roles: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.settings = settings
        self.clock = clock
        check_production_settings(settings)  # LMS_ENV=production refuses weak secrets
        self.state = RuntimeState()
        self._db: Database | None = None
        self._discovery: Discovery | None = None
        self._events: EventBus | None = None
        self._declared_calls: set[str] = set()
        self.lifecycle = Lifecycle(settings.component_timeout)
        self.health = HealthRegistry(settings.health_check_timeout)
        # one frozen catalogue of every problem code this service can answer with:
        # the capabilities it wires, then its own (no import-time registry)
        self.catalogue = Catalogue(
            errors.PROBLEMS,
            models.PROBLEMS,
            auth.PROBLEMS,
            ratelimit.PROBLEMS,
            security.PROBLEMS,
            HOST_PROBLEMS,
            RESILIENCE_PROBLEMS,
            DISCOVERY_PROBLEMS,
            CLIENT_PROBLEMS,
            problems,
        )
        self.problems = ProblemRenderer(settings.problem_base_uri, self.catalogue)
        self.deprecations = DeprecationRules()
        self.log = get_logger("lms.service", service=name, version=version)
        self.rate_limits = RateLimiter.from_settings(settings, clock, namespace=name)
        docs = settings.docs_enabled
        base_url = base_url_from_settings(settings)  # links never come from Host
        self.app = FastAPI(
            title=title or f"{name} service",
            version=version,
            description=description,
            lifespan=self._lifespan,
            docs_url="/docs" if docs else None,
            redoc_url=None,
            openapi_url="/openapi.json" if docs else None,
            servers=[{"url": base_url}] if base_url else None,
            **_NATIVE_TELEMETRY_OFF,
        )
        self.app.state.service = self
        self.router: APIRouter = self.app.router
        install_problem_handlers(self.app, self.problems)
        # links on LMS_PUBLIC_BASE_URL; cursors sealed with a key from LMS_SECRET_KEY
        install_paging(self.app, base_url=base_url, secret=settings.secret_key, service=name)
        install_openapi(self.app, self.problems, self.deprecations)
        install_health(self.app, self.health, self.state, service=name, version=version)
        # first in the lifecycle (stopped last: it exports what the others traced)
        self.tracing = self.add_component(
            Tracing(TracingConfig.from_settings(name, version, settings))
        )
        grants = {role: tuple(permissions) for role, permissions in (roles or {}).items()}
        config = replace(AuthConfig.from_settings(name, settings), grants=grants)
        self.auth = Auth(config, clock=clock)
        install_auth(self.app, self.auth.authenticator)
        self.add_component(self.auth)
        if self.auth.fetches_keys:
            self.health.add("auth", self.auth.ping)
        self.add_component(self.rate_limits)
        # Prometheus families, the event-loop lag sampler and GET /metrics (LMS_METRICS_*)
        self.metrics = self.add_component(
            Metrics(name, version, MetricsConfig.from_settings(settings), clock=clock)
        )
        if self.metrics.config.enabled:
            install_metrics(self.app, self.metrics, readiness=readiness_of(self.health, self.state))
        self.clients = self.add_component(
            Clients(
                name,
                version,
                settings=settings,
                clock=clock,
                credentials=self.auth.outgoing,
                discovery=lambda: self.discovery,
            )
        )
        self.clients.breakers.on_create(self.metrics.track_breaker)
        self._register_self()
        if settings.ratelimit_url:
            critical = settings.ratelimit_on_error == "deny"
            self.health.add("ratelimit", self.rate_limits.ping, critical=critical)
        self._install_middleware(settings, clock, base_url)
        self._own_routes = list(self.app.router.routes)  # moved behind the service's own

    @property
    def db(self) -> Database:
        """The service's database (:class:`lms_shared.db.Database`), made on first use.

        Nothing connects and no file appears until the service starts (or,
        when first used after start-up, until the first unit of work). It
        starts with the other components and reports readiness as the
        ``database`` check.

        Raises:
            SettingsError: ``LMS_ENV=production`` without ``LMS_DATABASE_URL``
                (the embedded SQLite file is one machine's, not a service's).
        """
        if self._db is None:
            if self.settings.env == "production" and self.settings.database_url is None:
                raise SettingsError(
                    [
                        (
                            "LMS_DATABASE_URL",
                            "is required in production: the embedded SQLite database "
                            "lives on one machine (set a postgresql+asyncpg:// URL)",
                        )
                    ]
                )
            # only services that use the database import SQLAlchemy
            from lms_shared.db import PROBLEMS as DB_PROBLEMS  # noqa: PLC0415
            from lms_shared.db import Database  # noqa: PLC0415

            database = Database.from_settings(self.name, self.settings, clock=self.clock)
            database.tracer_provider = self.tracing.provider  # a span per statement
            # a service that uses the database answers with its problem codes too
            self.catalogue = Catalogue(self.catalogue.values(), DB_PROBLEMS)
            self.problems.catalogue = self.catalogue
            self.app.openapi_schema = None
            self.health.add("database", database.ping)
            self.metrics.track_pool("primary", database.pool_stats)
            if not self.state.started:
                with suppress(RuntimeError):  # mid-start: it then opens on first use
                    self.add_component(database)
            self._db = database
        return self._db

    @property
    def events(self) -> EventBus:
        """The service's event bus (:class:`lms_shared.events.EventBus`), made on first use.

        Its transport is the one ``LMS_EVENTS_URL`` names (the embedded log
        when unset); it starts with the other components, drains after the
        HTTP requests did, and reports readiness as the ``events`` check.
        """
        if self._events is None:
            bus = EventBus.from_settings(self.name, self.settings, clock=self.clock)
            bus.tracing = self.tracing  # producer and consumer spans in this service's traces
            self.catalogue = Catalogue(self.catalogue.values(), EVENT_PROBLEMS)
            self.problems.catalogue = self.catalogue
            self.app.openapi_schema = None
            self.health.add("events", bus.ping)
            if not self.state.started:
                with suppress(RuntimeError):
                    self.add_component(bus)
            self._events = bus
        return self._events

    @property
    def discovery(self) -> Discovery:
        """The service's discovery (:class:`lms_shared.discovery.Discovery`), made on first use.

        ``LMS_DISCOVERY_URL`` names the registry (the local SQLite file
        when unset). It starts with the other components; when first used
        after start-up, the clients start it on their first lookup.
        """
        if self._discovery is None:
            config = DiscoveryConfig.from_settings(self.settings)
            discovery = Discovery.from_config(config, clock=self.clock)
            self._discovery = discovery
            try:
                self.add_component(discovery)
            except RuntimeError:  # first used after start-up
                self.clients.adopt(discovery)
        return self._discovery

    def _install_middleware(self, settings: Settings, clock: Clock, base_url: str | None) -> None:
        """Add the standard middleware stack to the app (innermost first)."""
        proxies = TrustedProxies.from_settings(settings)
        cors = CorsPolicy.from_settings(settings)
        # added innermost first; outermost to innermost the stack is: forwarded
        # (behind LMS_TRUSTED_PROXIES), request (the server span, the access line and
        # the request metrics), methods (HEAD, Allow), security headers, hosts, CORS,
        # deadline, rate limit, body limit, timeout
        self.app.add_middleware(
            TimeoutMiddleware, seconds=settings.request_timeout, renderer=self.problems
        )
        self.app.add_middleware(
            BodyLimitMiddleware, max_bytes=settings.max_body_bytes, renderer=self.problems
        )
        self.app.add_middleware(
            RateLimitMiddleware,
            limiter=self.rate_limits,
            renderer=self.problems,
            default=default_quota(settings),
            key=key_chain(settings.ratelimit_by),
        )
        self.app.add_middleware(  # x-lms-timeout-ms: the caller's deadline, handed on
            DeadlineMiddleware,
            renderer=self.problems,
            clock=clock,
            max_timeout=settings.request_timeout,
        )
        if cors is not None:
            self.app.add_middleware(CORSMiddleware, **cors.middleware_options())
        self.app.add_middleware(  # LMS_ALLOWED_HOSTS; Location off the Host header
            HostsMiddleware,
            allowed=AllowedHosts.from_settings(settings),
            renderer=self.problems,
            base_url=base_url,
        )
        if settings.security_headers:
            self.app.add_middleware(
                SecurityHeadersMiddleware,
                csp=settings.content_security_policy,
                hsts_max_age=settings.hsts_max_age,
            )
        # HEAD as GET, and a complete Allow on 405s (RFC 9110 §9.3.2, §15.5.6)
        self.app.add_middleware(MethodsMiddleware, routes=self.app.router.routes)
        # metrics are recorded by the request middleware, inside the request id and
        # trace (slow lines carry them)
        record = RequestRecorder(self.metrics) if self.metrics.config.enabled else None
        self.app.add_middleware(
            RequestMiddleware,
            service=self.name,
            version=self.version,
            renderer=self.problems,
            state=self.state,
            extra_headers=self.deprecations.headers_for_route,
            tracing=self.tracing,  # the SERVER span: around the access line and all inside
            record=record,
        )
        if proxies:  # the one place forwarding headers are believed (outermost)
            self.app.add_middleware(ForwardedMiddleware, proxies=proxies)

    def _register_self(self) -> None:
        """With ``LMS_DISCOVERY_ADDRESS``, register this instance while it runs."""
        config = DiscoveryConfig.from_settings(self.settings)
        try:
            me = config.self_instance(self.name, self.version)
        except ValueError as exc:
            raise SettingsError([("LMS_DISCOVERY_ADDRESS", str(exc))]) from None
        if me is not None:
            # the declarations are known once the service is built: read at start
            registration = self.discovery.register_self(
                me, ttl=config.ttl, metadata=lambda: self.declarations().metadata()
            )
            self.add_component(registration)

    def depends_on(self, *services: str) -> None:
        """Declare services this one calls (beside those it made clients of).

        The declarations travel in the discovery registration, where
        ``lms-shared map`` compares them with the calls the traces show.
        """
        self._declared_calls.update(services)

    def declarations(self) -> Declarations:
        """What this service declares: services it calls, event types it publishes and consumes.

        Calls are :meth:`depends_on` and the clients made so far (made
        when the service is built, they are what its code calls); event
        types are those its bus declared.
        """
        calls = set(self._declared_calls)
        calls.update(c.service for c in self.clients if not c.service.startswith(HARNESS_PREFIX))
        publishes: set[str] = set()
        consumes: set[str] = set()
        if self._events is not None:
            publishes.update(e.event_type() for e in self._events.published_events)
            consumes.update(e.event_type() for e in self._events.consumed_events)
        calls.discard(self.name)
        return Declarations(self.name, frozenset(calls), frozenset(publishes), frozenset(consumes))

    def client(self, name: str, **options: Any) -> ServiceClient:
        """The client of service ``name`` (:class:`lms_shared.client.ServiceClient`).

        Made on first use (the same object after), from the ``LMS_CLIENT_*``
        settings and ``options`` (:class:`lms_shared.client.ClientConfig`
        knobs, and ``transport=`` for tests); its connections open on the
        first call and close when the service stops.
        """
        return self.clients.get(name, **options)

    def add_component(self, component: C) -> C:
        """Start ``component`` with the service (after those added before).

        Returns:
            The component, so it can be assigned in one line.
        """
        self.lifecycle.add(component)
        return component

    def api(
        self, major: int, *, deprecation: Deprecation | None = None, **kwargs: Any
    ) -> APIRouter:
        """A router for version ``major`` of the API, under ``/v<major>``.

        Add routes to it, then :meth:`include` it. If ``deprecation`` is
        given, every route of the version answers with ``Deprecation`` and
        ``Sunset`` headers and is marked deprecated in OpenAPI.
        """
        router = versioned_router(major, **kwargs)
        if deprecation is not None:
            self.deprecations.add(router.prefix, deprecation)
        return router

    def deprecate(self, path: str, deprecation: Deprecation) -> None:
        """Deprecate one route (or every route under a path prefix)."""
        self.deprecations.add(path, deprecation)
        self.app.openapi_schema = None

    def include(self, *routers: APIRouter) -> None:
        """Serve the routes of ``routers`` (add their routes first)."""
        for router in routers:
            self.app.include_router(router)
        self.app.openapi_schema = None

    def _check_auth(self) -> None:
        """Protected routes and no way to check credentials: refuse, or say so loudly.

        In production the service does not start; elsewhere it logs a
        warning and its readiness fails with the reason (and so does every
        protected route, with a 503), until keys are configured.

        Raises:
            SettingsError: ``LMS_ENV=production`` and nothing can authenticate.
        """
        if self.auth.configured:
            return
        protected = protected_routes(self.app)
        if self.settings.env == "production":
            raise SettingsError(
                [("LMS_AUTH_JWKS_URL", f"is required in production: {NOT_CONFIGURED}")]
            )
        if not protected:
            return
        self.log.warning(NOT_CONFIGURED, protected_routes=protected[:10])
        if "auth" not in self.health.names:
            self.health.add("auth", self.auth.ping)

    @asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        settings = self.settings
        configure_service_logging(settings, service=self.name, version=self.version)
        self._check_auth()
        await self.lifecycle.start()
        # the probes and docs behind the service's routes, where that changes no answer
        move_behind(self.app.router.routes, self._own_routes)
        # what start-up built lives as long as the process: out of full collections
        frozen = freeze_startup_objects() if settings.gc_freeze else 0
        self.state.draining = False  # a service can be started again after a stop
        self.state.started = True
        self.log.info(
            "service started",
            components=[c.name for c in self.lifecycle.components],
            **({"gc_frozen": frozen} if frozen else {}),
        )
        try:
            yield
        finally:
            self.state.draining = True
            drained = await self.state.wait_idle(settings.drain_timeout)
            if not drained:
                self.log.warning(
                    "requests still in flight after the drain timeout",
                    inflight=self.state.inflight,
                )
            await self.lifecycle.stop()
            if self._db is not None:
                await self._db.stop()  # idempotent; covers a database first used mid-start
            self.state.started = False
            self.log.info("service stopped")


def create_service(
    name: str,
    version: str,
    *,
    problems: Sequence[ErrorCode] = (),
    settings: Settings | None = None,
    clock: Clock | None = None,
    components: Sequence[Component] = (),
    title: str | None = None,
    description: str = "",
    roles: Mapping[str, Sequence[str]] | None = None,
) -> Service:
    """Build a service from its name, version and the ``LMS_*`` settings.

    Args:
        name: short lower-case service name (``courses``).
        version: the service's release version.
        settings: explicit settings; read from the environment when omitted.
        clock: the clock components take; the system clock by default.
        components: started in order in the lifespan, stopped in reverse.
        title: OpenAPI title; ``"<name> service"`` by default.
        description: OpenAPI description (Markdown).
        problems: the service's own problem codes (``ErrorCode`` constants),
            documented in OpenAPI beside the platform's.
        roles: permissions this service grants to roles, *added* to the
            platform's defaults (``{"instructor": ["review:write"]}``; a new
            name makes a new role). ``LMS_AUTH_ROLES`` is the operator's and
            *replaces* the grants of each role it names, these included.

    Raises:
        SettingsError: a setting is invalid (the message names the variable).
        ValueError: the name is empty or not lower-case letters, digits and
            dashes, or ``roles`` holds a malformed role or permission.
    """
    if not name or not all(ch.islower() or ch.isdigit() or ch == "-" for ch in name):
        raise ValueError(f"a service name is lower-case letters, digits and dashes, got {name!r}")
    service = Service(
        name,
        version,
        settings if settings is not None else load_settings(),
        clock or SystemClock(),
        title=title,
        description=description,
        problems=problems,
        roles=roles,
    )
    for component in components:
        service.add_component(component)
    return service
