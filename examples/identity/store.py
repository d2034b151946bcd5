"""Where identity keeps its data: its tables, through ``service.db``.

:class:`IdentityStore` is the repository the routes call. Writes run as
units of work with :meth:`~lms_shared.db.Database.run` (re-run on a
serialization conflict), reads in read-only transactions; the slug and
email rules are unique constraints, turned into 409 problems here. List
endpoints take a :class:`~lms_shared.db.ListQuery` built from the request
by the allowlists :data:`ORGANIZATIONS` and :data:`USERS`.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.persistence import violated
from lms_shared import BadRequest, Conflict, NotFound
from lms_shared.db import ConstraintViolation, Database, ListQuery, QuerySpec
from lms_shared.models import PageParams
from lms_shared.security import Cipher, PasswordHasher, decrypt_field, encrypt_field

from .models import (
    ALREADY_BOOTSTRAPPED,
    Bootstrap,
    Bootstrapped,
    Organization,
    OrganizationCreate,
    User,
    UserCreate,
)
from .tables import OrganizationRow, UserRow

__all__ = ["ORGANIZATIONS", "USERS", "IdentityStore"]

_BOOTSTRAP_LOCK = 0x6C6D7362  # "lmsb": one bootstrap at a time (PostgreSQL)

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


PHONE = {"table": "users", "column": "phone"}
"""Where an encrypted phone number is bound (with the row id): moved elsewhere, it fails."""


def user_out(row: UserRow, cipher: Cipher | None) -> User:
    """The API's view of a user row, the phone number decrypted."""
    phone = None
    if row.phone_encrypted is not None and cipher is not None:
        phone = decrypt_field(cipher, row.phone_encrypted, row_id=row.id, **PHONE)
    return User.model_validate(
        {
            "id": row.id,
            "email": row.email,
            "name": row.name,
            "role": row.role,
            "organization_id": row.organization_id,
            "phone": phone,
            "created_at": row.created_at,
        }
    )


class IdentityStore:
    """Organizations and users, in identity's database.

    Passwords are kept as argon2id hashes (:class:`~lms_shared.security.PasswordHasher`),
    hashed and verified off the event loop; phone numbers encrypted with
    :func:`~lms_shared.security.encrypt_field`.

    Args:
        db: the service's database (``service.db``).
        cipher: encrypts phone numbers (``keyring_from_settings``); without
            one, users with a phone number are refused.
        hasher: hashes and verifies passwords.
    """

    def __init__(
        self, db: Database, cipher: Cipher | None = None, hasher: PasswordHasher | None = None
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._hasher = hasher or PasswordHasher()

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
        if data.phone is not None and self._cipher is None:
            raise BadRequest("this service stores no phone numbers: LMS_ENCRYPTION_KEYS is unset")
        password_hash = await self._hasher.ahash(data.password.get_secret_value())
        user_id = uuid4()  # the encrypted phone is bound to it
        phone = None
        if data.phone is not None and self._cipher is not None:
            phone = encrypt_field(self._cipher, data.phone, row_id=user_id, **PHONE)

        async def insert(tx: AsyncSession) -> User:
            if await tx.get(OrganizationRow, data.organization_id) is None:
                raise NotFound(f"organization {data.organization_id} does not exist")
            row = UserRow(
                id=user_id,
                phone_encrypted=phone,
                organization_id=data.organization_id,
                email=email,
                name=data.name,
                role=data.role,
                password_hash=password_hash,
            )
            tx.add(row)
            await tx.flush()
            return user_out(row, self._cipher)

        try:
            return await self._db.run(insert)
        except ConstraintViolation as exc:
            if not violated(exc, "uq_users_email"):
                raise
            raise Conflict(f"a user with email {email!r} already exists") from exc

    async def bootstrap(self, data: Bootstrap) -> Bootstrapped:
        """Make the first organization and its admin, while the platform has no user.

        Raises:
            Conflict: ``already-bootstrapped``, some user exists.
        """
        password_hash = await self._hasher.ahash(data.password.get_secret_value())

        async def insert(tx: AsyncSession) -> Bootstrapped:
            if (await tx.connection()).dialect.name == "postgresql":
                # concurrent bootstraps take turns, so the second counts the first's
                # admin (SQLite writers hold the write lock from BEGIN already)
                await tx.execute(select(func.pg_advisory_xact_lock(_BOOTSTRAP_LOCK)))
            if await tx.scalar(select(func.count(UserRow.id))):
                raise Conflict(
                    "the platform already has users; an admin registers the others",
                    code=ALREADY_BOOTSTRAPPED,
                )
            org = OrganizationRow(name=data.organization.name, slug=data.organization.slug)
            tx.add(org)
            await tx.flush()
            admin = UserRow(
                organization_id=org.id,
                email=data.email.lower(),
                name=data.name,
                role="admin",
                password_hash=password_hash,
            )
            tx.add(admin)
            await tx.flush()
            return Bootstrapped(
                organization=organization_out(org), admin=user_out(admin, self._cipher)
            )

        return await self._db.run(insert)

    async def login(self, email: str, password: str) -> User | None:
        """The user whose email and password these are, or ``None``.

        Unknown addresses cost a hash verification too (against a dummy
        hash), so timing does not tell which addresses exist.
        """
        async with self._db.transaction(read_only=True) as tx:
            row = await tx.scalar(select(UserRow).where(UserRow.email == email.lower()))
        stored = row.password_hash if row is not None else None
        if not await self._hasher.averify(stored, password) or row is None:
            return None
        return user_out(row, self._cipher)

    async def user(self, user_id: UUID) -> User:
        """One user.

        Raises:
            NotFound: the user does not exist.
        """
        async with self._db.transaction(read_only=True) as tx:
            row = await tx.get(UserRow, user_id)
        if row is None:
            raise NotFound(f"user {user_id} does not exist")
        return user_out(row, self._cipher)

    async def users(
        self, query: ListQuery[UserRow], params: PageParams
    ) -> tuple[list[User], str | None]:
        """A page of users, filtered and sorted as asked, and the next cursor."""
        async with self._db.transaction(read_only=True) as tx:
            rows, cursor = await query.page(tx, select(UserRow), params)
        return [user_out(row, self._cipher) for row in rows], cursor
