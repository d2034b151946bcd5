"""Request and response models of the identity API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from lms_shared.auth import PermissionGrant
from lms_shared.errors import ErrorCode

__all__ = [
    "ALREADY_BOOTSTRAPPED",
    "INVALID_LOGIN",
    "PROBLEMS",
    "AccessToken",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "Bootstrap",
    "Bootstrapped",
    "Login",
    "Organization",
    "OrganizationCreate",
    "Role",
    "User",
    "UserCreate",
]

Role = Literal["admin", "instructor", "student"]

INVALID_LOGIN = ErrorCode("invalid-login", 401, "Invalid email or password")
ALREADY_BOOTSTRAPPED = ErrorCode("already-bootstrapped", 409, "The platform has users already")

PROBLEMS: tuple[ErrorCode, ...] = (
    INVALID_LOGIN,
    ALREADY_BOOTSTRAPPED,
)
"""This service's own problem codes (passed to create_service)."""

Password = Annotated[
    SecretStr,
    Field(min_length=12, max_length=1024, description="at least 12 characters; never returned"),
]


class OrganizationCreate(BaseModel):
    """A new organization (a school, a university, a company)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["Northwind University"])
    slug: str = Field(
        pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
        description="unique, URL-safe short name",
        examples=["northwind"],
    )


class Organization(OrganizationCreate):
    """An organization."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    created_at: datetime


Email = Annotated[
    str,
    Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254, examples=["ada@northwind.edu"]),
]


class UserBase(BaseModel):
    """What a user is: their address, name, role and organization."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    name: str = Field(min_length=1, max_length=200, examples=["Ada Lovelace"])
    role: Role
    organization_id: UUID
    phone: str | None = Field(
        None,
        pattern=r"^\+[1-9][0-9]{6,14}$",
        description="E.164; stored encrypted",
        examples=["+442079460001"],
    )


class UserCreate(UserBase):
    """A new user of an organization, with the password they log in with."""

    password: Password


class User(UserBase):
    """A user (never with their password or its hash)."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    created_at: datetime


class Bootstrap(BaseModel):
    """The platform's first organization and its first admin (only while no user exists)."""

    model_config = ConfigDict(extra="forbid")

    organization: OrganizationCreate
    email: Email
    name: str = Field(min_length=1, max_length=200, examples=["Grace Hopper"])
    password: Password


class Bootstrapped(BaseModel):
    """The organization and the admin :class:`Bootstrap` made."""

    organization: Organization
    admin: User


class Login(BaseModel):
    """Password login."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    password: SecretStr = Field(max_length=1024)


class AccessToken(BaseModel):
    """An OAuth 2.0-style token response (RFC 6749 section 5.1)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="seconds the token is valid for")


class ApiKeyCreate(BaseModel):
    """A new API key for a script or an integration, acting with ``roles``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["roster-export"])
    roles: list[Role] = Field(min_length=1, examples=[["instructor"]])
    scopes: list[PermissionGrant] | None = Field(
        None,
        max_length=50,
        description="permission patterns it is limited to",
        examples=[["user:read"]],
    )
    expires_in_days: int = Field(90, ge=1, le=365)


class ApiKeyCreated(BaseModel):
    """A new API key; ``secret`` is shown this once and never stored."""

    id: str
    name: str
    owner: str
    roles: list[str]
    scopes: list[str] | None
    expires_at: datetime | None
    secret: str
