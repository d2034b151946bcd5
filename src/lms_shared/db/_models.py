"""The model base class and the mixins the database layer understands.

Each service declares its own base, so its tables live in its own registry
and ``MetaData`` (its migrations see only its tables)::

    class Base(Model, DeclarativeBase):
        pass

    class Course(Base, TenantMixin, SoftDeleteMixin, TimestampMixin):
        __tablename__ = "courses"
        id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
        title: Mapped[str] = mapped_column(String(200))

* :class:`TenantMixin` adds ``tenant_id``; every query of the model is
  filtered to the transaction's tenant and every new row gets it.
* :class:`SoftDeleteMixin` adds ``deleted_at``; queries skip deleted rows
  unless ``execution_options(include_deleted=True)``.
* :class:`TimestampMixin` adds ``created_at``/``updated_at``, filled from
  the service's injected clock when the session flushes.

Constraint names follow :data:`NAMING_CONVENTION`, so migrations can drop
and alter them by name on every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import DateTime, Dialect, MetaData, String, TypeDecorator, Uuid
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

__all__ = [
    "NAMING_CONVENTION",
    "Model",
    "SoftDeleteMixin",
    "TenantMixin",
    "TimestampMixin",
    "UtcDateTime",
    "model_metadata",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def model_metadata(schema: str | None = None) -> MetaData:
    """A fresh ``MetaData`` with the chassis' constraint naming convention.

    Args:
        schema: the default schema of its tables (PostgreSQL); usually left
            unset and chosen per deployment with ``LMS_DATABASE_SCHEMA``.
    """
    return MetaData(naming_convention=NAMING_CONVENTION, schema=schema)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``; SQLite, which has no time zones,
    stores the UTC time and gives it back aware. Naive datetimes are
    refused, so no local time sneaks in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        """Values are ``datetime`` objects."""
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Check and normalise a value on its way to the database."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot be stored: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Give a stored value back timezone-aware (UTC)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Model(AsyncAttrs):
    """Mixin of a service's declarative base: typed columns, named constraints.

    Declare one base per service, so each has its own registry and
    ``MetaData`` (its migrations see only its tables)::

        class Base(Model, DeclarativeBase):
            pass

    The base gets a fresh ``MetaData`` with :data:`NAMING_CONVENTION`
    (unless it sets its own ``metadata``); ``datetime`` columns are
    :class:`UtcDateTime`, ``UUID`` columns native where the backend has them.
    """

    metadata: ClassVar[MetaData]
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        UUID: Uuid(),
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if DeclarativeBase in cls.__bases__ and "metadata" not in cls.__dict__:
            cls.metadata = model_metadata()
        super().__init_subclass__(**kwargs)


class TenantMixin:
    """A tenant-owned row: queries and writes are scoped to the transaction's tenant."""

    @declared_attr
    def tenant_id(cls) -> Mapped[str]:  # noqa: N805 (SQLAlchemy passes the class)
        """The owning tenant (organisation) of the row."""
        return mapped_column(String(64), index=True, nullable=False)


class SoftDeleteMixin:
    """A row that is marked deleted instead of removed; hidden from queries by default."""

    deleted_at: Mapped[datetime | None] = mapped_column(default=None, nullable=True)

    @property
    def is_deleted(self) -> bool:
        """The row is soft-deleted."""
        return self.deleted_at is not None

    def soft_delete(self, at: datetime) -> None:
        """Mark the row deleted as of ``at`` (take it from the service's clock)."""
        if at.tzinfo is None:
            raise ValueError("soft_delete needs a timezone-aware time")
        self.deleted_at = at

    def restore(self) -> None:
        """Undo :meth:`soft_delete`."""
        self.deleted_at = None


UPDATED_AT_INFO = "lms_updated_at"
"""``Column.info`` key of a column that :func:`~lms_shared.db.versioned_update` stamps."""


class TimestampMixin:
    """``created_at`` and ``updated_at``, set from the injected clock.

    On flush for ORM objects; :func:`~lms_shared.db.versioned_update` moves
    ``updated_at`` too, given the model or its table.
    """

    created_at: Mapped[datetime] = mapped_column(nullable=False)
    updated_at: Mapped[datetime] = mapped_column(nullable=False, info={UPDATED_AT_INFO: True})


def tenant_owned(cls: Any) -> bool:
    """The class is a tenant-owned model."""
    return isinstance(cls, type) and issubclass(cls, TenantMixin)


def soft_deletable(cls: Any) -> bool:
    """The class is a soft-deletable model."""
    return isinstance(cls, type) and issubclass(cls, SoftDeleteMixin)
