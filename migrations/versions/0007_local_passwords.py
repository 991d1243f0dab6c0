"""local_passwords, password_resets, reset_limits: local passwords and their reset limits

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "local_passwords",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("must_change", sa.Boolean(), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.Column("failed_tries", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "user_name", name=op.f("pk_local_passwords")),
    )
    op.create_table(
        "password_resets",
        sa.Column("reset_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("target_user_name", sa.String(length=64), nullable=False),
        sa.Column("admin_user_name", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("code_sent_to", sa.String(length=160), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("reset_id", name=op.f("pk_password_resets")),
    )
    op.create_index(
        "ix_password_resets_target",
        "password_resets",
        ["tenant_id", "target_user_name", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_password_resets_admin",
        "password_resets",
        ["tenant_id", "admin_user_name", "created_at"],
        unique=False,
    )
    op.create_table(
        "reset_limits",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "user_name", name=op.f("pk_reset_limits")),
    )


def downgrade() -> None:
    op.drop_table("reset_limits")
    op.drop_index("ix_password_resets_admin", table_name="password_resets")
    op.drop_index("ix_password_resets_target", table_name="password_resets")
    op.drop_table("password_resets")
    op.drop_table("local_passwords")
