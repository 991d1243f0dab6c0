"""change notices without the sign-ins: new sessions, session apps and grants notify nobody

Every sign-in inserts a session and its app, and every app's sign-in a grant. Each such
INSERT sent a notification on `identity_changes`, so that every process forgot the access
tokens' liveness rows (`grants._LIVE_SIGNED`), and PostgreSQL serialised the committing
transactions that notify. What those rows read of these three tables is found by a key fixed by
the row itself (the grant by `grant_id`, its session by `sid`, the session's app by `sid` and
`app_id`), so a row of another session, app or grant cannot change a row found; it can only make
a row that was not found appear, and such answers are not kept any more
(`identity.pg_cache.INSERTS_UNHEARD`). A DELETE, a TRUNCATE or an UPDATE of a column they read
still notifies, so whatever ends a session, an app's sign-in or a grant is heard at once.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 06:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "identity_changed"
TRIGGER = "identity_changes"
WATCHED = {
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
}
"""The three tables and the columns whose UPDATE is heard (as revision 0017 made them)."""


def _triggers(events: str) -> None:
    for table, columns in WATCHED.items():
        op.execute(f"DROP TRIGGER {TRIGGER} ON {table}")
        op.execute(
            f"CREATE TRIGGER {TRIGGER} "
            f"AFTER {events} OR UPDATE OF {', '.join(columns)} ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _triggers("DELETE OR TRUNCATE")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _triggers("INSERT OR DELETE OR TRUNCATE")
