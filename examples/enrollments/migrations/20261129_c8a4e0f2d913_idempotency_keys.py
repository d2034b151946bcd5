"""idempotency keys

Revision ID: c8a4e0f2d913
Revises: 7b11733744b3
Create Date: 2026-11-29 18:15:00

``POST /v1/enrollments`` honours ``Idempotency-Key``: the first response per
key is kept in ``lms_idempotency_keys`` (``lms_shared.models.idempotency_table``)
and replayed to retries for 24 hours.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "c8a4e0f2d913"
down_revision: str | tuple[str, ...] | None = "7b11733744b3"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Create ``lms_idempotency_keys``."""
    op.create_table(
        "lms_idempotency_keys",
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_lms_idempotency_keys")),
    )
    op.create_index(
        op.f("ix_lms_idempotency_keys_expires_at"), "lms_idempotency_keys", ["expires_at"]
    )


def downgrade() -> None:
    """Drop ``lms_idempotency_keys``."""
    op.drop_index(op.f("ix_lms_idempotency_keys_expires_at"), table_name="lms_idempotency_keys")
    op.drop_table("lms_idempotency_keys")
