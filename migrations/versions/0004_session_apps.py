"""sessions hold several apps: `session_apps` (one row per app, with its upstream tokens), and a
public `sid` per session

A browser's session now belongs to one member of one tenant and holds every app that member
signed in to, so the upstream tokens move to `session_apps` and their associated data names the
app. Existing sessions cannot be carried over without re-encrypting their tokens under the new
associated data, so they are ended: members sign in again once after the upgrade.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sessions_v1() -> None:
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("access_token_enc", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token_enc", sa.LargeBinary(), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(), nullable=True),
        sa.Column("renewing_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_sessions")),
    )


def _indexes() -> None:
    op.create_index("ix_sessions_member", "sessions", ["tenant_id", "user_name"])
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])
    op.create_index(op.f("ix_sessions_last_seen_at"), "sessions", ["last_seen_at"])


def upgrade() -> None:
    op.drop_table("sessions")
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("sid", sa.String(length=43), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("authenticated_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_sessions")),
        sa.UniqueConstraint("sid", name=op.f("uq_sessions_sid")),
    )
    _indexes()
    op.create_table(
        "session_apps",
        sa.Column("sid", sa.String(length=43), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("access_token_enc", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token_enc", sa.LargeBinary(), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(), nullable=True),
        sa.Column("renewing_until", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["sid"], ["sessions.sid"], name=op.f("fk_session_apps_sid_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sid", "app_id", name=op.f("pk_session_apps")),
    )


def downgrade() -> None:
    op.drop_table("session_apps")
    op.drop_table("sessions")
    _sessions_v1()
    _indexes()
