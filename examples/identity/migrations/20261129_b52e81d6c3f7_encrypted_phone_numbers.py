"""encrypted phone numbers

Revision ID: b52e81d6c3f7
Revises: 3f9d2b7c41a0
Create Date: 2026-11-29 18:12:00

Users may have a phone number, stored encrypted (``encrypt_field``: AES-256-GCM
under ``LMS_ENCRYPTION_KEYS``, bound to table, column and row), never in clear.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "b52e81d6c3f7"
down_revision: str | tuple[str, ...] | None = "3f9d2b7c41a0"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Add ``users.phone_encrypted``."""
    op.add_column("users", sa.Column("phone_encrypted", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop ``users.phone_encrypted``."""
    with op.batch_alter_table("users") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("phone_encrypted")
