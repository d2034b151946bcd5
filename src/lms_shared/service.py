"""The service factory: one call builds a configured FastAPI service.

``create_service("courses", version="1.4.0")`` reads the ``LMS_*``
settings once, builds the FastAPI app with the standard middleware, problem
handlers, health endpoints and OpenAPI document, and returns a
:class:`Service` holding one object per concern. Nothing connects at
construction: components start in the app's lifespan, in the order they
were added, and stop in reverse after in-flight requests drained.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, FastAPI
from starlette.middleware.cors import CORSMiddleware

from lms_shared.auth import Auth, AuthConfig, install_auth
from lms_shared.clock import Clock, SystemClock
from lms_shared.http.health import HealthRegistry, install_health
from lms_shared.http.limits import BodyLimitMiddleware, TimeoutMiddleware
from lms_shared.http.openapi import install_openapi
from lms_shared.http.problems import ProblemRenderer, install_problem_handlers
from lms_shared.http.request import RequestMiddleware
from lms_shared.http.types import RuntimeState
from lms_shared.http.versioning import Deprecation, DeprecationRules, versioned_router
from lms_shared.lifecycle import Component, Lifecycle
from lms_shared.observability import configure_logging, get_logger
from lms_shared.ratelimit import RateLimiter, RateLimitMiddleware, default_policy, key_chain
from lms_shared.security import (
    CorsPolicy,
    SecurityHeadersMiddleware,
    TrustedProxies,
    check_production_settings,
)
from lms_shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from lms_shared.db import Database

__all__ = ["Service", "create_service"]

C = TypeVar("C", bound=Component)


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
        auth: tokens, API keys, permissions and service tokens
            (:class:`lms_shared.auth.Auth`); the first component started.
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
    ) -> None:
        self.name = name
        self.version = version
        self.settings = settings
        self.clock = clock
        check_production_settings(settings)  # LMS_ENV=production refuses weak secrets
        self.state = RuntimeState()
        self._db: Database | None = None
        self.lifecycle = Lifecycle(settings.component_timeout)
        self.health = HealthRegistry(settings.health_check_timeout)
        self.problems = ProblemRenderer(settings.problem_base_uri)
        self.deprecations = DeprecationRules()
        self.log = get_logger("lms.service", service=name, version=version)
        self.rate_limits = RateLimiter.from_settings(settings, clock, namespace=name)
        docs = settings.docs_enabled
        self.app = FastAPI(
            title=title or f"{name} service",
            version=version,
            description=description,
            lifespan=self._lifespan,
            docs_url="/docs" if docs else None,
            redoc_url=None,
            openapi_url="/openapi.json" if docs else None,
        )
        self.app.state.service = self
        self.router: APIRouter = self.app.router
        install_problem_handlers(self.app, self.problems)
        install_openapi(self.app, self.problems, self.deprecations)
        install_health(self.app, self.health, self.state, service=name, version=version)
        self.auth = Auth(AuthConfig.from_settings(name, settings), clock=clock)
        install_auth(self.app, self.auth.authenticator)
        self.add_component(self.auth)
        if self.auth.fetches_keys:
            self.health.add("auth", self.auth.ping)
        self.add_component(self.rate_limits)
        if settings.ratelimit_url:
            critical = settings.ratelimit_on_error == "deny"
            self.health.add("ratelimit", self.rate_limits.ping, critical=critical)
        proxies = TrustedProxies.from_settings(settings)
        cors = CorsPolicy.from_settings(settings)
        # added innermost first; outermost to innermost the stack is: request,
        # security headers, CORS, rate limit, body limit, timeout
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
            default=default_policy(settings),
            key=key_chain(settings.ratelimit_by, proxies),
        )
        if cors is not None:
            self.app.add_middleware(CORSMiddleware, **cors.middleware_options())
        if settings.security_headers:
            self.app.add_middleware(
                SecurityHeadersMiddleware,
                csp=settings.content_security_policy,
                hsts_max_age=settings.hsts_max_age,
                trusted_proxies=proxies,
            )
        self.app.add_middleware(
            RequestMiddleware,
            service=name,
            version=version,
            renderer=self.problems,
            state=self.state,
            extra_headers=self.deprecations.headers_for_route,
        )

    @property
    def db(self) -> Database:
        """The service's database (:class:`lms_shared.db.Database`), made on first use.

        Nothing connects and no file appears until the service starts (or,
        when first used after start-up, until the first unit of work). It
        starts with the other components and reports readiness as the
        ``database`` check.
        """
        if self._db is None:
            from lms_shared.db import Database  # noqa: PLC0415 (only services using it import SQLAlchemy)

            database = Database.from_settings(self.name, self.settings, clock=self.clock)
            self.health.add("database", database.ping)
            if not self.state.started:
                with suppress(RuntimeError):  # mid-start: it then opens on first use
                    self.add_component(database)
            self._db = database
        return self._db

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

    @asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        settings = self.settings
        configure_logging(level=settings.log_level, fmt=settings.log_format)
        await self.lifecycle.start()
        self.state.draining = False  # a service can be started again after a stop
        self.state.started = True
        self.log.info("service started", components=[c.name for c in self.lifecycle.components])
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
    settings: Settings | None = None,
    clock: Clock | None = None,
    components: Sequence[Component] = (),
    title: str | None = None,
    description: str = "",
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

    Raises:
        SettingsError: a setting is invalid (the message names the variable).
        ValueError: the name is empty or not lower-case letters, digits and dashes.
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
    )
    for component in components:
        service.add_component(component)
    return service
