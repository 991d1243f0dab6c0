"""an app's own page, for the member's list of apps

`identity clients add --home-uri`: where the signed-in page (`/sso/me`) links an app that cannot
start a sign-in itself (no `initiate_login_uri`). One nullable column on `oidc_clients`.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oidc_clients") as batch:
        batch.add_column(sa.Column("home_uri", sa.String(2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oidc_clients") as batch:
        batch.drop_column("home_uri")
