"""The identity service's app: ``uvicorn examples.identity.app:app``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request, Response

from examples.persistence import LIST_PROBLEMS
from lms_shared import Service, Settings, create_service
from lms_shared.db import ListQuery
from lms_shared.http import Page, PageParams, page_params

from .models import Organization, OrganizationCreate, User, UserCreate
from .store import ORGANIZATIONS, USERS, IdentityStore
from .tables import Base, OrganizationRow, UserRow

__all__ = ["MIGRATIONS", "app", "build_service", "service"]

VERSION = "0.1.0"
MIGRATIONS = Path(__file__).with_name("migrations")
Paging = Annotated[PageParams, Depends(page_params)]
OrganizationQuery = Annotated[ListQuery[OrganizationRow], Depends(ORGANIZATIONS.dependency)]
UserQuery = Annotated[ListQuery[UserRow], Depends(USERS.dependency)]


def build_service(*, settings: Settings | None = None) -> Service:
    """Build the identity service on its database (``LMS_DATABASE_*`` settings).

    Its tables come from the revisions in :data:`MIGRATIONS`: applied at
    start-up with ``LMS_DATABASE_MIGRATE_ON_START=true`` (the demo sets it),
    or beforehand with ``lms-shared db upgrade --service examples.identity.app``.
    """
    service = create_service(
        "identity",
        VERSION,
        settings=settings,
        title="Identity service",
        description="Organizations and their users (admins, instructors, students).",
    )
    service.db.use_migrations(MIGRATIONS, metadata=Base.metadata)
    store = IdentityStore(service.db)
    v1 = service.api(1)

    @v1.post(
        "/organizations",
        status_code=201,
        tags=["organizations"],
        responses={409: {"description": "the slug is taken"}},
    )
    async def create_organization(body: OrganizationCreate, response: Response) -> Organization:
        """Create an organization; its slug must be unique."""
        org = await store.add_organization(body)
        response.headers["location"] = f"/v1/organizations/{org.id}"
        return org

    @v1.get("/organizations", tags=["organizations"], responses=LIST_PROBLEMS)
    async def list_organizations(
        request: Request, paging: Paging, query: OrganizationQuery
    ) -> Page[Organization]:
        """List organizations, a page at a time.

        Filters: `slug` (`eq`, `prefix`: `?slug[prefix]=north`), `name` (`eq`,
        `icontains`). Sort (`?sort=-name`): `created_at` (default), `name`, `slug`.
        """
        items, cursor = await store.organizations(query, paging)
        return Page[Organization].build(items, cursor, request)

    @v1.get("/organizations/{organization_id}", tags=["organizations"])
    async def get_organization(organization_id: UUID) -> Organization:
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
    async def create_user(body: UserCreate, response: Response) -> User:
        """Register a user in an organization; the email must be unique."""
        user = await store.add_user(body)
        response.headers["location"] = f"/v1/users/{user.id}"
        return user

    @v1.get("/users", tags=["users"], responses=LIST_PROBLEMS)
    async def list_users(request: Request, paging: Paging, query: UserQuery) -> Page[User]:
        """List users, a page at a time.

        Filters: `role` (`eq`, `in`: `?role[in]=admin,instructor`),
        `organization_id` (`eq`, `in`), `email` (`eq`), `name` (`icontains`).
        Sort (`?sort=-created_at`): `created_at` (default), `name`, `email`.
        """
        items, cursor = await store.users(query, paging)
        return Page[User].build(items, cursor, request)

    @v1.get("/users/{user_id}", tags=["users"])
    async def get_user(user_id: UUID) -> User:
        """Get one user."""
        return await store.user(user_id)

    service.include(v1)
    return service


service = build_service()
app = service.app
