"""event-sourced gradebooks

Revision ID: 3f9b2c7d41e8
Revises: a61c3a394473
Create Date: 2026-12-06 22:00:00

The tables of ``lms_shared.events.sourcing`` (``sourcing_tables``): the event
store, its snapshots and the projections' checkpoints; grading keeps each
enrollment's gradebook there (``examples.grading.gradebook``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "3f9b2c7d41e8"
down_revision: str | tuple[str, ...] | None = "a61c3a394473"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

_POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the event store, snapshot and checkpoint tables."""
    op.create_table(
        "lms_event_store",
        sa.Column("position", _POSITION, autoincrement=True, nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_lms_event_store")),
        sa.UniqueConstraint("stream", "version", name="lms_event_store_stream_version"),
    )
    op.create_table(
        "lms_event_snapshots",
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_lms_event_snapshots")),
    )
    op.create_table(
        "lms_projection_checkpoints",
        sa.Column("projection", sa.String(length=200), nullable=False),
        sa.Column("position", _POSITION, nullable=False),
        sa.PrimaryKeyConstraint("projection", name=op.f("pk_lms_projection_checkpoints")),
    )


def downgrade() -> None:
    """Drop them (the gradebooks' history goes with them)."""
    op.drop_table("lms_projection_checkpoints")
    op.drop_table("lms_event_snapshots")
    op.drop_table("lms_event_store")
