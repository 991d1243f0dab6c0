"""what each marketplace call changed, recorded by its handler with the audit row

The syncs page of the admin console said what each call changed by reading the rows whose
timestamps fell within the call's time span. Each handler now counts what it did, in the call's
transaction, and the audit row keeps it: one nullable column on `marketplace_calls`. The calls
audited before this revision have none, and the page says their changes were not recorded.

JSON rather than Text holding JSON: SQLAlchemy's JSON type serialises the dict on the way in and
parses it on the way out on both databases (SQLite stores the text; PostgreSQL's `json` keeps it
as written, with no jsonb conversion, since nothing queries inside it), so no code handles the
text itself.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("marketplace_calls") as batch:
        batch.add_column(sa.Column("changes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("marketplace_calls") as batch:
        batch.drop_column("changes")
