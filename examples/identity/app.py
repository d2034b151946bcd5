"""The identity service's app: ``uvicorn examples.identity.app:app``."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request, Response

from lms_shared import Service, Settings, create_service
from lms_shared.http import Page, PageParams, page_params

from .models import Organization, OrganizationCreate, Role, User, UserCreate
from .store import IdentityStore

__all__ = ["app", "build_service", "service"]

VERSION = "0.1.0"
Paging = Annotated[PageParams, Depends(page_params)]


def build_service(*, settings: Settings | None = None) -> Service:
    """Build the identity service with a fresh, empty store."""
    service = create_service(
        "identity",
        VERSION,
        settings=settings,
        title="Identity service",
        description="Organizations and their users (admins, instructors, students).",
    )
    store = IdentityStore(service.clock)
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

    @v1.get("/organizations", tags=["organizations"])
    async def list_organizations(request: Request, paging: Paging) -> Page[Organization]:
        """List organizations, a page at a time."""
        items, cursor = await store.organizations(paging)
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

    @v1.get("/users", tags=["users"])
    async def list_users(
        request: Request,
        paging: Paging,
        role: Role | None = None,
        organization_id: UUID | None = None,
    ) -> Page[User]:
        """List users, optionally by role or organization, a page at a time."""
        items, cursor = await store.users(paging, role=role, organization_id=organization_id)
        return Page[User].build(items, cursor, request)

    @v1.get("/users/{user_id}", tags=["users"])
    async def get_user(user_id: UUID) -> User:
        """Get one user."""
        return await store.user(user_id)

    service.include(v1)
    return service


service = build_service()
app = service.app
