"""local_password_tries: the local sign-in lockout per account and client address

Failed local sign-ins were counted per account, so anyone could lock any member out. They are
now counted per account and client address (`local_password_tries`), and per account only as
a ceiling over an hour (`local_passwords.failed_tries` since `failures_since`), which no longer
locks the account itself (`locked_until` goes). Existing counts start again from zero.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "local_password_tries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failed_tries", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("last_try_at", sa.DateTime(), nullable=False),
        sa.Column("signed_in_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_password_tries")),
        sa.UniqueConstraint(
            "tenant_id", "user_name", "address", name=op.f("uq_local_password_tries_tenant_id")
        ),
    )
    op.create_index(
        op.f("ix_local_password_tries_last_try_at"), "local_password_tries", ["last_try_at"]
    )
    with op.batch_alter_table("local_passwords") as batch:
        batch.add_column(sa.Column("failures_since", sa.DateTime(), nullable=True))
        batch.drop_column("locked_until")
    op.execute("UPDATE local_passwords SET failed_tries = 0")


def downgrade() -> None:
    with op.batch_alter_table("local_passwords") as batch:
        batch.add_column(sa.Column("locked_until", sa.DateTime(), nullable=True))
        batch.drop_column("failures_since")
    op.drop_index(op.f("ix_local_password_tries_last_try_at"), table_name="local_password_tries")
    op.drop_table("local_password_tries")
