"""the directory for the apps: the directory scope, change events and their delivery

- `oidc_clients.scopes`: what a client may ask for beyond OpenID Connect's own scopes
  (`directory.read`, for the client-credentials grant and the SCIM reads);
  `events_uri` and its Standard Webhooks secret (encrypted under the master key), with the
  previous secret and when it stops signing, so a rotation overlaps.
- `event_cursors`: the last change event's cursor in each tenant. Taking the next one updates
  the tenant's row there, so the transactions that write a tenant's events commit in cursor
  order. A table of its own, not a column of `tenants`, whose rows logins read FOR SHARE.
- `directory_events`: the outbox of change events, keyed by (tenant, cursor).
- `event_streams`: one per client and tenant: what has been delivered, the batch being sent,
  its lease and its retries.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oidc_clients") as batch:
        batch.add_column(sa.Column("scopes", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("events_uri", sa.String(2048), nullable=True))
        batch.add_column(sa.Column("events_secret_enc", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("events_previous_secret_enc", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("events_previous_until", sa.DateTime(), nullable=True))
    op.create_table(
        "event_cursors",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_event_cursors")),
    )
    op.create_table(
        "directory_events",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("app_id", sa.String(64), nullable=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("resource_key", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "cursor", name=op.f("pk_directory_events")),
    )
    op.create_index("ix_directory_events_created_at", "directory_events", ["created_at"])
    op.create_table(
        "event_streams",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("delivered_through", sa.BigInteger(), nullable=False),
        sa.Column("batch_through", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("batch_started_at", sa.DateTime(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.Column("skipped", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "tenant_id", name=op.f("pk_event_streams")),
    )
    op.create_index("ix_event_streams_next_attempt_at", "event_streams", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_event_streams_next_attempt_at", table_name="event_streams")
    op.drop_table("event_streams")
    op.drop_index("ix_directory_events_created_at", table_name="directory_events")
    op.drop_table("directory_events")
    op.drop_table("event_cursors")
    with op.batch_alter_table("oidc_clients") as batch:
        for column in (
            "events_previous_until",
            "events_previous_secret_enc",
            "events_secret_enc",
            "events_uri",
            "scopes",
        ):
            batch.drop_column(column)
