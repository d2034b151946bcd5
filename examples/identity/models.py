"""Request and response models of the identity API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Organization", "OrganizationCreate", "Role", "User", "UserCreate"]

Role = Literal["admin", "instructor", "student"]


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


class UserCreate(BaseModel):
    """A new user of an organization."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254, examples=["ada@northwind.edu"]
    )
    name: str = Field(min_length=1, max_length=200, examples=["Ada Lovelace"])
    role: Role
    organization_id: UUID


class User(UserCreate):
    """A user."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    created_at: datetime
