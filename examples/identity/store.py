"""Where identity keeps its data: its tables, through ``service.db``.

:class:`IdentityStore` is the repository the routes call. Writes run as
units of work with :meth:`~lms_shared.db.Database.run` (re-run on a
serialization conflict), reads in read-only transactions; the slug and
email rules are unique constraints, turned into 409 problems here. List
endpoints take a :class:`~lms_shared.db.ListQuery` built from the request
by the allowlists :data:`ORGANIZATIONS` and :data:`USERS`.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.persistence import violated
from lms_shared import Conflict, NotFound
from lms_shared.db import ConstraintViolation, Database, ListQuery, QuerySpec
from lms_shared.http import PageParams

from .models import Organization, OrganizationCreate, User, UserCreate
from .tables import OrganizationRow, UserRow

__all__ = ["ORGANIZATIONS", "USERS", "IdentityStore"]

ORGANIZATIONS = QuerySpec(
    OrganizationRow,
    filters={"slug": ["eq", "prefix"], "name": ["eq", "icontains"]},
    sorts=["created_at", "name", "slug"],
    default_sort="created_at",
)
"""``GET /v1/organizations``: ``?slug[prefix]=north&sort=name``."""

USERS = QuerySpec(
    UserRow,
    filters={
        "role": ["eq", "in"],
        "organization_id": ["eq", "in"],
        "email": ["eq"],
        "name": ["icontains"],
    },
    sorts=["created_at", "name", "email"],
    default_sort="created_at",
)
"""``GET /v1/users``: ``?organization_id=...&role[in]=instructor,admin&sort=name``."""


def organization_out(row: OrganizationRow) -> Organization:
    """The API's view of an organization row."""
    return Organization(id=row.id, name=row.name, slug=row.slug, created_at=row.created_at)


def user_out(row: UserRow) -> User:
    """The API's view of a user row."""
    return User.model_validate(
        {
            "id": row.id,
            "email": row.email,
            "name": row.name,
            "role": row.role,
            "organization_id": row.organization_id,
            "created_at": row.created_at,
        }
    )


class IdentityStore:
    """Organizations and users, in identity's database.

    Args:
        db: the service's database (``service.db``).
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_organization(self, data: OrganizationCreate) -> Organization:
        """Create an organization.

        Raises:
            Conflict: the slug is taken.
        """

        async def insert(tx: AsyncSession) -> Organization:
            row = OrganizationRow(name=data.name, slug=data.slug)
            tx.add(row)
            await tx.flush()  # ids and timestamps are filled in, constraints checked
            return organization_out(row)

        try:
            return await self._db.run(insert)
        except ConstraintViolation as exc:
            if not violated(exc, "uq_organizations_slug"):
                raise
            raise Conflict(f"the slug {data.slug!r} is already taken") from exc

    async def organization(self, org_id: UUID) -> Organization:
        """One organization.

        Raises:
            NotFound: it does not exist.
        """
        async with self._db.transaction(read_only=True) as tx:
            row = await tx.get(OrganizationRow, org_id)
        if row is None:
            raise NotFound(f"organization {org_id} does not exist")
        return organization_out(row)

    async def organizations(
        self, query: ListQuery[OrganizationRow], params: PageParams
    ) -> tuple[list[Organization], str | None]:
        """A page of organizations, filtered and sorted as asked, and the next cursor."""
        async with self._db.transaction(read_only=True) as tx:
            rows, cursor = await query.page(tx, select(OrganizationRow), params)
        return [organization_out(row) for row in rows], cursor

    async def add_user(self, data: UserCreate) -> User:
        """Create a user in an existing organization.

        Raises:
            NotFound: the organization does not exist.
            Conflict: the email address is taken.
        """
        email = data.email.lower()

        async def insert(tx: AsyncSession) -> User:
            if await tx.get(OrganizationRow, data.organization_id) is None:
                raise NotFound(f"organization {data.organization_id} does not exist")
            row = UserRow(
                organization_id=data.organization_id, email=email, name=data.name, role=data.role
            )
            tx.add(row)
            await tx.flush()
            return user_out(row)

        try:
            return await self._db.run(insert)
        except ConstraintViolation as exc:
            if not violated(exc, "uq_users_email"):
                raise
            raise Conflict(f"a user with email {email!r} already exists") from exc

    async def user(self, user_id: UUID) -> User:
        """One user.

        Raises:
            NotFound: the user does not exist.
        """
        async with self._db.transaction(read_only=True) as tx:
            row = await tx.get(UserRow, user_id)
        if row is None:
            raise NotFound(f"user {user_id} does not exist")
        return user_out(row)

    async def users(
        self, query: ListQuery[UserRow], params: PageParams
    ) -> tuple[list[User], str | None]:
        """A page of users, filtered and sorted as asked, and the next cursor."""
        async with self._db.transaction(read_only=True) as tx:
            rows, cursor = await query.page(tx, select(UserRow), params)
        return [user_out(row) for row in rows], cursor
