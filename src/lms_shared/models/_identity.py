"""Organizations (the tenants of the platform) and their users."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from lms_shared.models._base import LmsModel, Resource
from lms_shared.models._types import Email, LocaleCode, Name, Slug, Title, WebUrl
from lms_shared.redaction._personal import Personal

__all__ = [
    "Organization",
    "OrganizationCreate",
    "OrganizationUpdate",
    "Role",
    "User",
    "UserCreate",
    "UserUpdate",
]

_ORG_EXAMPLE: JsonDict = {
    "slug": "northwind-university",
    "name": "Northwind University",
    "locale": "en-GB",
    "website": "https://northwind.example.edu/",
}
_USER_EXAMPLE: JsonDict = {
    "organization_id": "0b7c2a4e-5d2f-4c1b-9a53-6f0e1d2c3b4a",
    "email": "ada@example.org",
    "given_name": "Ada",
    "family_name": "Lovelace",
    "locale": "en-GB",
    "roles": ["student"],
}
_STORED: JsonDict = {
    "id": "3f2b8c1d-7e6a-4f5b-8c9d-0a1b2c3d4e5f",
    "version": 1,
    "created_at": "2026-01-05T09:30:00Z",
    "updated_at": "2026-01-05T09:30:00Z",
}


class Role(StrEnum):
    """What a user may do inside their organization."""

    STUDENT = "student"
    INSTRUCTOR = "instructor"
    TEACHING_ASSISTANT = "teaching_assistant"
    ADMIN = "admin"


def _canonical_roles(roles: list[Role]) -> list[Role]:
    # roles are a set: one canonical order keeps the JSON stable
    return sorted(set(roles))


_OrgSlug = Annotated[Slug, Field(description="unique short name, used in URLs")]
_OrgName = Annotated[Title, Field(description="display name")]
_Locale = Annotated[LocaleCode, Field(description="default language (BCP 47)")]
_Website = Annotated[WebUrl | None, Field(description="public website")]
_Roles = Annotated[
    list[Role], Field(min_length=1, max_length=4, description="roles, sorted, no duplicates")
]
_Email = Annotated[Email, Personal("contact"), Field(description="sign-in e-mail address")]
_Given = Annotated[Name, Personal("identity"), Field(description="given (first) name")]
_Family = Annotated[Name, Personal("identity"), Field(description="family (last) name")]
_Born = Annotated[date | None, Personal("identity"), Field(description="date of birth")]


class OrganizationCreate(LmsModel, schema_name="lms.organization.create"):
    """A new organization (tenant)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ORG_EXAMPLE]})

    slug: _OrgSlug
    name: _OrgName
    locale: _Locale = "en"
    website: _Website = None


class OrganizationUpdate(LmsModel, schema_name="lms.organization.update"):
    """Changes to an organization; absent fields stay as they are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Northwind College"}]})

    name: _OrgName | None = None
    locale: _Locale | None = None
    website: _Website = None


class Organization(Resource, schema_name="lms.organization"):
    """An organization (tenant): every user, course and enrollment belongs to one."""

    model_config = ConfigDict(json_schema_extra={"examples": [{**_STORED, **_ORG_EXAMPLE}]})

    slug: _OrgSlug
    name: _OrgName
    locale: _Locale
    website: _Website = None


class UserCreate(LmsModel, schema_name="lms.user.create"):
    """A new user of an organization."""

    model_config = ConfigDict(json_schema_extra={"examples": [_USER_EXAMPLE]})

    organization_id: UUID = Field(description="the user's organization")
    email: _Email
    given_name: _Given
    family_name: _Family
    date_of_birth: _Born = None
    locale: _Locale = "en"
    roles: _Roles = Field(default_factory=lambda: [Role.STUDENT], validate_default=True)

    _roles = field_validator("roles")(_canonical_roles)


class UserUpdate(LmsModel, schema_name="lms.user.update"):
    """Changes to a user; absent fields stay as they are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"family_name": "King"}]})

    email: _Email | None = None
    given_name: _Given | None = None
    family_name: _Family | None = None
    date_of_birth: _Born = None
    locale: _Locale | None = None
    roles: _Roles | None = None

    @field_validator("roles")
    @classmethod
    def _roles(cls, roles: list[Role] | None) -> list[Role] | None:
        return None if roles is None else _canonical_roles(roles)


class User(Resource, schema_name="lms.user"):
    """A user. E-mail, names and date of birth are personal data."""

    model_config = ConfigDict(json_schema_extra={"examples": [{**_STORED, **_USER_EXAMPLE}]})

    organization_id: UUID = Field(description="the user's organization")
    email: _Email
    given_name: _Given
    family_name: _Family
    date_of_birth: _Born = None
    locale: _Locale
    roles: _Roles

    _roles = field_validator("roles")(_canonical_roles)
