"""an index on the lower-cased tenant code

A member's login names the enterprise by its code, matched without regard to case
(`identity.sso.admission.find_tenant`), and the directory report does the same. With no index on
`lower(tenant_code)` each such lookup read every tenant (1.7 ms at 10,000 tenants on SQLite, per
login); with it, one index lookup. The index is small (one entry per tenant) and quick to build
on either database.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tenants_code_lower", "tenants", [sa.text("lower(tenant_code)")])


def downgrade() -> None:
    op.drop_index("ix_tenants_code_lower", table_name="tenants")
