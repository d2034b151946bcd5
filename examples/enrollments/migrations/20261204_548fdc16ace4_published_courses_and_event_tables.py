"""published courses and event tables

Revision ID: 548fdc16ace4
Revises: c8a4e0f2d913
Create Date: 2026-12-04 15:00:00

Enrollments hears ``CoursePublished`` from courses (``service.events``) and
keeps each published course in ``published_courses``, once per event
through the inbox; the outbox and dead-letter tables come with it
(``lms_shared.events.sql``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "548fdc16ace4"
down_revision: str | tuple[str, ...] | None = "c8a4e0f2d913"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Create ``published_courses`` and the tables of ``service.events``."""
    op.create_table(
        "published_courses",
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heard_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("course_id", name=op.f("pk_published_courses")),
    )
    op.create_table(
        "lms_event_outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_lms_event_outbox")),
    )
    op.create_table(
        "lms_event_inbox",
        sa.Column("consumer_group", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "event_id", name=op.f("pk_lms_event_inbox")),
    )
    op.create_index(op.f("ix_lms_event_inbox_handled_at"), "lms_event_inbox", ["handled_at"])
    op.create_table(
        "lms_dead_letters",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("consumer_group", sa.String(length=64), nullable=False),
        sa.Column("handler", sa.String(length=300), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lms_dead_letters")),
    )
    for column in ("consumer_group", "event_type", "dead_at"):
        op.create_index(op.f(f"ix_lms_dead_letters_{column}"), "lms_dead_letters", [column])


def downgrade() -> None:
    """Drop them."""
    for column in ("consumer_group", "event_type", "dead_at"):
        op.drop_index(op.f(f"ix_lms_dead_letters_{column}"), table_name="lms_dead_letters")
    op.drop_table("lms_dead_letters")
    op.drop_index(op.f("ix_lms_event_inbox_handled_at"), table_name="lms_event_inbox")
    op.drop_table("lms_event_inbox")
    op.drop_table("lms_event_outbox")
    op.drop_table("published_courses")
