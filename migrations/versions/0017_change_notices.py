"""change notices: PostgreSQL notifies `identity_changes` when what the kept hot reads read changes

Each process keeps the rows of a few hot reads (the client look-up, the access token's
liveness, the keys in force: `identity.pg_cache`) and forgets them all at any notification on
`identity_changes`. A statement-level trigger on every table they read sends it after an INSERT,
a DELETE, a TRUNCATE or an UPDATE of a column they read; the payload is constant, so PostgreSQL
sends one notification per transaction however many statements fired. The trigger is the
database's, so every writer is heard: the service, the CLI, the worker, an operator's psql.

`sessions.last_seen_at` is read but left out: every refresh and page touches it, it only moves
forward, and a kept row with an older value can only look idle too early, which
`grants.live_signed` checks again in the database. Nothing on SQLite, whose processes share no
cache (its reads are cheap on the event loop's thread).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-20 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "identity_changed"
CHANNEL = TRIGGER = "identity_changes"
WATCHED = {
    "tenants": ("tenant_id", "tenant_code", "state"),
    "instances": ("instance_id", "status"),
    "tenant_instances": ("tenant_id", "instance_id", "state"),
    "app_credentials": ("tenant_id", "app_id", "instance_id", "state"),
    "members": ("tenant_id", "user_name", "name", "org_code", "email", "state"),
    "authorisations": (
        "tenant_id",
        "app_id",
        "user_name",
        "instance_id",
        "role",
        "enabled",
        "state",
    ),
    "sessions": (
        "id_hash",
        "sid",
        "tenant_id",
        "user_name",
        "created_at",
        "authenticated_at",
        "expires_at",
    ),
    "session_apps": ("sid", "app_id", "token_expires_at", "renewing_until", "refresh_token_enc"),
    "oidc_grants": ("grant_id", "sid", "client_id", "app_id", "scope", "nonce"),
    "oidc_clients": ("client_id", "app_id", "public", "secret_hash", "scopes"),
    "signing_keys": ("kid", "revoked_at"),
}
"""Each table the kept reads read, and the columns whose UPDATE must be heard (as they were
when this migration was written: a test checks every kept statement against the triggers in
the database)."""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN NOTIFY {CHANNEL}; RETURN NULL; END $$"
    )
    for table, columns in WATCHED.items():
        op.execute(
            f"CREATE TRIGGER {TRIGGER} "
            f"AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF {', '.join(columns)} ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in WATCHED:
        op.execute(f"DROP TRIGGER {TRIGGER} ON {table}")
    op.execute(f"DROP FUNCTION {FUNCTION}()")
