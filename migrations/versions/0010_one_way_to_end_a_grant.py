"""one way to end a grant, and the access audit without its never-written column

A grant of the OpenID Provider now ends only by its row being deleted (with its session, with
its client, or alone on code or refresh-token reuse and on revocation), so `oidc_grants`
loses `revoked_at`: a grant revoked before this upgrade is deleted by it. `access_revocations`
is an audit, not an outbox: `delivered_at` was never written and goes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    grants = sa.table("oidc_grants", sa.column("grant_id"), sa.column("revoked_at"))
    for child in ("oidc_codes", "oidc_refresh_tokens"):  # the foreign keys may be off here
        table = sa.table(child, sa.column("grant_id"))
        revoked = sa.select(grants.c.grant_id).where(grants.c.revoked_at.is_not(None))
        op.execute(table.delete().where(table.c.grant_id.in_(revoked)))
    op.execute(grants.delete().where(grants.c.revoked_at.is_not(None)))
    with op.batch_alter_table("oidc_grants") as batch:
        batch.drop_column("revoked_at")
    with op.batch_alter_table("access_revocations") as batch:
        batch.drop_column("delivered_at")


def downgrade() -> None:
    with op.batch_alter_table("access_revocations") as batch:
        batch.add_column(sa.Column("delivered_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("oidc_grants") as batch:
        batch.add_column(sa.Column("revoked_at", sa.DateTime(), nullable=True))
