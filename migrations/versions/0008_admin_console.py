"""the admin console: members' last sign-in, and the indexes its keyset pages and searches use

`members.last_login_at` is identity's own (not a marketplace field). The member list pages by
`userName` (the primary key's order) and searches by prefix of the account or the name;
on PostgreSQL those prefix ranges compare in the "C" collation, where strings sharing a prefix
sort together whatever the database's collation, so the search indexes are built in it. The
department filter is an index range in `userName` order too; the member page reads a member's
authorisations across apps, and the sync list the tenant's calls newest first.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("last_login_at", sa.DateTime(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            'CREATE INDEX ix_members_account_c ON members (tenant_id, user_name COLLATE "C")'
        )
        op.execute('CREATE INDEX ix_members_name_c ON members (tenant_id, name COLLATE "C")')
    else:
        op.create_index("ix_members_name_c", "members", ["tenant_id", "name"])
    op.create_index("ix_members_department", "members", ["tenant_id", "org_code", "user_name"])
    op.create_index("ix_authorisations_member", "authorisations", ["tenant_id", "user_name"])
    op.create_index("ix_marketplace_calls_tenant", "marketplace_calls", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_marketplace_calls_tenant", table_name="marketplace_calls")
    op.drop_index("ix_authorisations_member", table_name="authorisations")
    op.drop_index("ix_members_department", table_name="members")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_members_account_c", table_name="members")
    op.drop_index("ix_members_name_c", table_name="members")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("last_login_at")
