"""Alembic's environment for lms-shared: runs on the connection it is handed.

:class:`lms_shared.db.Migrations` puts a live connection, the service's
version table and metadata in ``config.attributes``; there is no
``alembic.ini`` and no offline (``--sql``) mode.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy.engine import Connection

from lms_shared.db._models import UtcDateTime


def _render_item(type_: str, obj: Any, _: AutogenContext) -> str | Literal[False]:
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run migrations through lms_shared.db.Migrations (no offline mode)")
    metadata = config.attributes.get("lms_metadata")
    applied: list[str] = config.attributes["lms_applied"]
    own_tables = set(metadata.tables) if metadata is not None else set()

    def include_name(name: str | None, type_: str, _: Any) -> bool:
        # a database may hold other services' tables: never propose dropping them
        return type_ != "table" or name in own_tables

    def record(
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: Collection[Any],
        run_args: Mapping[str, Any],
    ) -> None:
        applied.append(str(step.up_revision_id))

    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=config.attributes["lms_version_table"],
        transactional_ddl=True,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
        include_name=include_name,
        on_version_apply=record,
    )
    with context.begin_transaction():
        context.run_migrations()


_run()
