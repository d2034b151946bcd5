"""${message}

Revision ID: ${up_revision}
Revises: ${", ".join(down_revision) if isinstance(down_revision, (list, tuple)) else (down_revision or "(none)")}
Create Date: ${create_date}
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 (used by most revisions)
from alembic import op  # noqa: F401
${imports if imports else ""}
revision: str = "${up_revision}"
down_revision: str | tuple[str, ...] | None = ${'"%s"' % down_revision if isinstance(down_revision, str) else repr(down_revision)}
branch_labels: str | tuple[str, ...] | None = ${repr(branch_labels)}
depends_on: str | tuple[str, ...] | None = ${repr(depends_on)}


def upgrade() -> None:
    """Apply this revision (expand: add, never break the running version)."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Revert this revision."""
    ${downgrades if downgrades else "pass"}
