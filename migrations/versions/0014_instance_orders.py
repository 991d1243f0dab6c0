"""the order behind an instance, read from the marketplace's query-order API

newInstance names only the order; with a Huawei Cloud access key configured, identity reads the
order and keeps it with the instance: `order_state` (NULL: never asked, as for every instance
made before this revision; `confirmed`, `pending`, `refused`, `given_up`), `order_enc` (the
order as the API gave it, encrypted: it names the buyer), and the worker's retry bookkeeping
for a pending one (`order_attempts`, `order_next_at`, `order_error`). Nullable columns and an
index on `order_next_at`, which the worker's query for due instances reads.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("order_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("order_enc", sa.LargeBinary(), nullable=True))
        batch.add_column(
            sa.Column("order_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("order_next_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("order_error", sa.String(255), nullable=True))
        batch.create_index("ix_instances_order_next_at", ["order_next_at"])


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_index("ix_instances_order_next_at")
        for name in ("order_error", "order_next_at", "order_attempts", "order_enc", "order_state"):
            batch.drop_column(name)
