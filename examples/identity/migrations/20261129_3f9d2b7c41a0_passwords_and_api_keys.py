"""passwords and api keys

Revision ID: 3f9d2b7c41a0
Revises: 8ce203c77ad8
Create Date: 2026-11-29 18:10:00

Users get an argon2id password hash (nullable: users made before this
revision have none and cannot log in until an admin sets one), and identity
owns the library's API key table (``lms_shared.auth.API_KEY_METADATA``),
so ``DatabaseApiKeyStore(..., create_table=False)`` never makes it itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "3f9d2b7c41a0"
down_revision: str | tuple[str, ...] | None = "8ce203c77ad8"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Add ``users.password_hash``; create ``lms_api_keys``."""
    op.add_column("users", sa.Column("password_hash", sa.String(length=255), nullable=True))
    op.create_table(
        "lms_api_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=255), nullable=True),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_by", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lms_api_keys")),
        sa.UniqueConstraint("hash", name=op.f("uq_lms_api_keys_hash")),
    )
    op.create_index(op.f("ix_lms_api_keys_owner"), "lms_api_keys", ["owner"])


def downgrade() -> None:
    """Drop ``lms_api_keys`` and ``users.password_hash``."""
    op.drop_index(op.f("ix_lms_api_keys_owner"), table_name="lms_api_keys")
    op.drop_table("lms_api_keys")
    with op.batch_alter_table("users") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("password_hash")
