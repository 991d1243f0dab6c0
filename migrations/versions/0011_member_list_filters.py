"""the member list's filters that read further: indexes that start from the few members they match

`state=disabled` starts from the tenant's authorisations that are active and not enabled (every
disabled member has one, and they are few): a partial index holds those rows alone, so it is
never a candidate for the lookups of enabled authorisations, which use the member's index. A
name search (`q`) collects the members whose name starts with the prefix: the name index now
carries `userName`, so that collecting them reads the index alone, not each member's row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _name_index(*columns: str) -> None:
    """The name index, on PostgreSQL in the "C" collation of the prefix ranges (0008)."""
    op.drop_index("ix_members_name_c", table_name="members")
    if op.get_bind().dialect.name == "postgresql":
        keys = ", ".join(['name COLLATE "C"', *columns])
        op.execute(f"CREATE INDEX ix_members_name_c ON members (tenant_id, {keys})")
    else:
        op.create_index("ix_members_name_c", "members", ["tenant_id", "name", *columns])


def upgrade() -> None:
    _name_index("user_name")
    op.create_index(
        "ix_authorisations_not_enabled",
        "authorisations",
        ["tenant_id", "user_name", "state"],
        sqlite_where=sa.text("enabled = 0"),
        postgresql_where=sa.text("enabled = false"),
    )


def downgrade() -> None:
    op.drop_index("ix_authorisations_not_enabled", table_name="authorisations")
    _name_index()
