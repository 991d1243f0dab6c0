"""what a session shows of its sign-in: the method, the browser and platform, the address

The admin console tells a member's sessions apart by how the latest sign-in into each was made
(the marketplace or a local password), the browser and platform in words (parsed from the user
agent, which is not kept) and the client address. Four nullable columns on `sessions`; the
sessions opened before this revision have none of them, and the console shows them as unknown.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("sign_in_method", 16), ("browser", 64), ("platform", 64), ("address", 64))


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        for name, length in COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
