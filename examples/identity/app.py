"""The identity service's app: ``uvicorn examples.identity.app:app``.

Identity is the platform's token issuer: users log in with a password
(``POST /v1/login``, argon2id hashes) and get an access token for every
service; services get service tokens from ``POST /oauth2/token`` (client
credentials, ``LMS_AUTH_CLIENTS``); everyone verifies them against
``GET /.well-known/jwks.json``. The very first admin comes from
``POST /v1/bootstrap``, which works only while no user exists.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request, Response

from examples.access import JWKS_PATH, TOKEN_PATH
from examples.persistence import LIST_PROBLEMS
from examples.topology import SERVICES, service_url
from lms_shared import Service, Settings, create_service
from lms_shared.auth import DatabaseApiKeyStore, Principal, SigningKey, TokenSigner
from lms_shared.client.trace_harness import install_trace_harness
from lms_shared.db import ListQuery
from lms_shared.errors import ProblemError
from lms_shared.http import (
    Page,
    RateCheck,
    ServiceClients,
    jwks_router,
    limit,
    page_params,
    rate_check,
    require,
    token_router,
)
from lms_shared.http.query import list_query
from lms_shared.models import Id, PageParams
from lms_shared.security import keyring_from_settings

from .models import (
    INVALID_LOGIN,
    PROBLEMS,
    AccessToken,
    ApiKeyCreate,
    ApiKeyCreated,
    Bootstrap,
    Bootstrapped,
    Login,
    Organization,
    OrganizationCreate,
    User,
    UserCreate,
)
from .store import ORGANIZATIONS, USERS, IdentityStore
from .tables import Base, OrganizationRow, UserRow

__all__ = ["MIGRATIONS", "app", "build_service", "service"]

VERSION = "0.1.0"
LOGIN_RATE = "20/minute"
"""Logins per client address (the route's limit): a demo run logs in about 15 times."""
ACCOUNT_LOGINS = rate_check("5/minute", name="login-account")
"""Logins per account, whoever tries: slows password guessing from many addresses.

A dependency, so every answer of the route advertises the policy (422s too)."""
MIGRATIONS = Path(__file__).with_name("migrations")
Paging = Annotated[PageParams, Depends(page_params)]
OrganizationQuery = Annotated[ListQuery[OrganizationRow], Depends(list_query(ORGANIZATIONS))]
UserQuery = Annotated[ListQuery[UserRow], Depends(list_query(USERS))]


def build_service(*, settings: Settings | None = None) -> Service:
    """Build the identity service on its database (``LMS_DATABASE_*`` settings).

    Its tables come from the revisions in :data:`MIGRATIONS`: applied at
    start-up with ``LMS_DATABASE_MIGRATE_ON_START=true`` (the demo sets it),
    or beforehand with ``lms-shared db upgrade --service examples.identity.app``.
    """
    service = create_service(
        "identity",
        VERSION,
        problems=PROBLEMS,
        settings=settings,
        title="Identity service",
        description="Organizations and their users (admins, instructors, students).",
    )
    if service.settings.env != "production":  # the W3C Trace Context harness drives POST /test
        install_trace_harness(service)
    service.db.use_migrations(MIGRATIONS, metadata=Base.metadata)
    cipher = keyring_from_settings(service.settings) if service.settings.encryption_keys else None
    store = IdentityStore(service.db, cipher)
    auth = service.auth
    signer = auth.signer
    if signer is None:  # no LMS_AUTH_SIGNING_KEYS: a key for this process's lifetime
        signer = TokenSigner(
            auth.config.issuer or service_url("identity"),
            [SigningKey.generate("ES256")],
            clock=service.clock,
            ttl=auth.config.access_token_ttl,
        )
        auth.use_signer(signer)
    api_keys = auth.use_api_keys(DatabaseApiKeyStore(service.db, create_table=False))
    service.include(jwks_router(signer, path=JWKS_PATH))
    service.include(
        token_router(
            signer,
            ServiceClients(auth.config.clients),
            ttl=auth.config.service_token_ttl,
            audiences=SERVICES,
            path=TOKEN_PATH,
        )
    )
    v1 = service.api(1)

    @v1.post(
        "/bootstrap",
        status_code=201,
        tags=["auth"],
        responses={409: {"description": "already-bootstrapped: some user exists"}},
    )
    async def bootstrap(body: Bootstrap) -> Bootstrapped:
        """Create the first organization and its admin; refused once any user exists.

        The only unauthenticated write: a new platform has nobody to log in as.
        """
        return await store.bootstrap(body)

    @v1.post(
        "/login",
        tags=["auth"],
        responses={
            401: {"description": "invalid-login"},
            429: {"description": "too many logins from this address, or for this account"},
        },
    )
    @limit(LOGIN_RATE, name="login")  # per client address, counted before the body is read
    async def login(body: Login, accounts: RateCheck = ACCOUNT_LOGINS) -> AccessToken:
        """Exchange an email and password for an access token valid at every service.

        Rate-limited per client address (20/minute) and per account (5/minute).
        """
        await accounts.check(f"account:{body.email.lower()}")
        user = await store.login(body.email, body.password.get_secret_value())
        if user is None:
            raise ProblemError("the email or the password is wrong", code=INVALID_LOGIN)
        principal = Principal(
            subject=str(user.id),
            # admins are platform staff; the others belong to their organization
            tenant=None if user.role == "admin" else str(user.organization_id),
            roles=frozenset({user.role}),
            name=user.name,
        )
        ttl = auth.config.access_token_ttl
        token = signer.issue(principal, audience=SERVICES, ttl=ttl)
        return AccessToken(access_token=token, expires_in=int(ttl))

    @v1.post("/api-keys", status_code=201, tags=["auth"])
    async def create_api_key(
        body: ApiKeyCreate, who: Principal = require("apikey:write")
    ) -> ApiKeyCreated:
        """Make an API key owned by the caller; its secret is in this response only."""
        issued = await api_keys.create(
            body.name,
            owner=who.subject,
            roles=body.roles,
            scopes=body.scopes,
            tenant=who.tenant,
            expires_in=timedelta(days=body.expires_in_days),
        )
        key = issued.key
        return ApiKeyCreated(
            id=key.id,
            name=key.name,
            owner=key.owner,
            roles=sorted(key.roles),
            scopes=None if key.scopes is None else sorted(key.scopes),
            expires_at=key.expires_at,
            secret=issued.secret,
        )

    @v1.post(
        "/organizations",
        status_code=201,
        tags=["organizations"],
        responses={409: {"description": "the slug is taken"}},
    )
    async def create_organization(
        body: OrganizationCreate, response: Response, _: Principal = require("organization:write")
    ) -> Organization:
        """Create an organization; its slug must be unique."""
        org = await store.add_organization(body)
        response.headers["location"] = f"/v1/organizations/{org.id}"
        return org

    @v1.get("/organizations", tags=["organizations"], responses=LIST_PROBLEMS)
    async def list_organizations(
        request: Request,
        paging: Paging,
        query: OrganizationQuery,
        _: Principal = require("organization:read"),
    ) -> Page[Organization]:
        """List organizations, a page at a time.

        Filters: `slug` (`eq`, `prefix`: `?slug[prefix]=north`), `name` (`eq`,
        `icontains`). Sort (`?sort=-name`): `created_at` (default), `name`, `slug`.
        """
        items, cursor = await store.organizations(query, paging)
        return Page[Organization].build(items, cursor, request)

    @v1.get("/organizations/{organization_id}", tags=["organizations"])
    async def get_organization(
        organization_id: Id, _: Principal = require("organization:read")
    ) -> Organization:
        """Get one organization."""
        return await store.organization(organization_id)

    @v1.post(
        "/users",
        status_code=201,
        tags=["users"],
        responses={
            404: {"description": "the organization does not exist"},
            409: {"description": "the email address is taken"},
        },
    )
    async def create_user(
        body: UserCreate, response: Response, _: Principal = require("user:write")
    ) -> User:
        """Register a user in an organization; the email must be unique."""
        user = await store.add_user(body)
        response.headers["location"] = f"/v1/users/{user.id}"
        return user

    @v1.get("/users", tags=["users"], responses=LIST_PROBLEMS)
    async def list_users(
        request: Request, paging: Paging, query: UserQuery, _: Principal = require("user:read")
    ) -> Page[User]:
        """List users, a page at a time.

        Filters: `role` (`eq`, `in`: `?role[in]=admin,instructor`),
        `organization_id` (`eq`, `in`), `email` (`eq`), `name` (`icontains`).
        Sort (`?sort=-created_at`): `created_at` (default), `name`, `email`.
        """
        items, cursor = await store.users(query, paging)
        return Page[User].build(items, cursor, request)

    @v1.get("/users/{user_id}", tags=["users"])
    async def get_user(user_id: Id, _: Principal = require("user:read")) -> User:
        """Get one user."""
        return await store.user(user_id)

    service.include(v1)
    return service


service = build_service()
app = service.app
