"""sessions: upstream tokens (encrypted), indexes for the worker's purge

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("access_token_enc", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("refresh_token_enc", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("token_expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("renewing_until", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sessions_last_seen_at"), ["last_seen_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_last_seen_at"))
        batch_op.drop_index(batch_op.f("ix_sessions_expires_at"))
        batch_op.drop_column("renewing_until")
        batch_op.drop_column("token_expires_at")
        batch_op.drop_column("refresh_token_enc")
        batch_op.drop_column("access_token_enc")
