"""course versions

Revision ID: d1f7a93b6e20
Revises: ed63ccf9f15c
Create Date: 2026-11-29 18:16:00

Courses get a version (their ``ETag``): ``PATCH /v1/courses/{id}`` needs
``If-Match`` with the current one. Existing courses start at 1.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "d1f7a93b6e20"
down_revision: str | tuple[str, ...] | None = "ed63ccf9f15c"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Add ``courses.version`` (1 for existing rows)."""
    op.add_column("courses", sa.Column("version", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    """Drop ``courses.version``."""
    with op.batch_alter_table("courses") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("version")
