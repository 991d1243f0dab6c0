"""change notices by table: each notification names its table; the sign-in's reads are watched

Revision 0017's notifications had one constant payload, so every process forgot every kept row
at any change, and the sign-ins, which write sessions all the time, kept emptying the clients'
rows as well. Now the payload is the table's name (`TG_TABLE_NAME`; PostgreSQL still folds
equal notifications into one per transaction), and a process forgets only the rows of the
statements that read that table (`identity.pg_cache`). A process that does not know the name
(or hears 0017's empty payload) forgets everything, as before.

Two more hot reads are kept: the sign-in's client (the tenant's domain and the app's
credentials) and the app's landing after a platform-initiated sign-in (its
`initiate_login_uri`). The triggers on `tenants`, `app_credentials` and `oidc_clients` are
made again with the columns those read.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 00:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "identity_changed"
CHANNEL = TRIGGER = "identity_changes"
BEFORE = {
    "tenants": ("tenant_id", "tenant_code", "state"),
    "app_credentials": ("tenant_id", "app_id", "instance_id", "state"),
    "oidc_clients": ("client_id", "app_id", "public", "secret_hash", "scopes"),
}
"""The three tables' columns as revision 0017 watched them."""
AFTER = {
    "tenants": (*BEFORE["tenants"], "domain_name"),
    "app_credentials": (*BEFORE["app_credentials"], "client_id", "client_secret_enc"),
    "oidc_clients": (
        *BEFORE["oidc_clients"],
        "initiate_login_uri",
        "redirect_uris",
        "created_at",
    ),
}


def _function(payload: str) -> None:
    op.execute(
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', {payload}); RETURN NULL; END $$"
    )


def _triggers(watched: dict[str, tuple[str, ...]]) -> None:
    for table, columns in watched.items():
        op.execute(f"DROP TRIGGER {TRIGGER} ON {table}")
        op.execute(
            f"CREATE TRIGGER {TRIGGER} "
            f"AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF {', '.join(columns)} ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _function("TG_TABLE_NAME")
    _triggers(AFTER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _function("''")
    _triggers(BEFORE)
