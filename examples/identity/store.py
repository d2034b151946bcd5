"""Where identity keeps its data: in memory for now, behind one class.

The database layer replaces :class:`IdentityStore` with the same methods.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from lms_shared import Clock, Conflict, NotFound
from lms_shared.http import PageParams, paginate

from .models import Organization, OrganizationCreate, Role, User, UserCreate

__all__ = ["IdentityStore"]


class IdentityStore:
    """Organizations and users.

    Args:
        clock: stamps ``created_at``.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._organizations: dict[UUID, Organization] = {}
        self._users: dict[UUID, User] = {}

    async def add_organization(self, data: OrganizationCreate) -> Organization:
        """Create an organization.

        Raises:
            Conflict: the slug is taken.
        """
        if any(org.slug == data.slug for org in self._organizations.values()):
            raise Conflict(f"the slug {data.slug!r} is already taken")
        org = Organization(id=uuid.uuid4(), created_at=self._clock.now(), **data.model_dump())
        self._organizations[org.id] = org
        return org

    async def organization(self, org_id: UUID) -> Organization:
        """One organization.

        Raises:
            NotFound: it does not exist.
        """
        try:
            return self._organizations[org_id]
        except KeyError:
            raise NotFound(f"organization {org_id} does not exist") from None

    async def organizations(self, params: PageParams) -> tuple[list[Organization], str | None]:
        """A page of organizations, ordered by id, and the next cursor."""
        return paginate(list(self._organizations.values()), params, key=lambda o: str(o.id))

    async def add_user(self, data: UserCreate) -> User:
        """Create a user in an existing organization.

        Raises:
            NotFound: the organization does not exist.
            Conflict: the email address is taken.
        """
        await self.organization(data.organization_id)
        email = data.email.lower()
        if any(user.email == email for user in self._users.values()):
            raise Conflict(f"a user with email {email!r} already exists")
        user = User(
            id=uuid.uuid4(),
            created_at=self._clock.now(),
            **data.model_dump(exclude={"email"}),
            email=email,
        )
        self._users[user.id] = user
        return user

    async def user(self, user_id: UUID) -> User:
        """One user.

        Raises:
            NotFound: the user does not exist.
        """
        try:
            return self._users[user_id]
        except KeyError:
            raise NotFound(f"user {user_id} does not exist") from None

    async def users(
        self,
        params: PageParams,
        *,
        role: Role | None = None,
        organization_id: UUID | None = None,
    ) -> tuple[list[User], str | None]:
        """A page of users, optionally filtered, and the next cursor."""
        users = [
            user
            for user in self._users.values()
            if (role is None or user.role == role)
            and (organization_id is None or user.organization_id == organization_id)
        ]
        return paginate(users, params, key=lambda u: str(u.id))
