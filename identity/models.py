"""Every ORM model. Natural keys are primary keys or unique constraints: idempotency comes from
upserts on them (contract §3, §7), never from a look-up followed by an insert.

Past the ~400 lines other modules keep to, on purpose: one module holds the whole schema so it
reads in one place, until about 500 lines, when it becomes a package by feature."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from identity.db import utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Lifecycle values, kept as short strings so both backends compare them the same way.
ACTIVE, DELETED, CANCELLED = "active", "deleted", "cancelled"
FROZEN, RELEASED = "frozen", "released"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Tenant(Timestamps, Base):
    __tablename__ = "tenants"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_code: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))
    """Marketplace `timeStamp` (yyyyMMddHHmmssSSS, GMT+8) of the newest applied tenantSync."""


class Instance(Timestamps, Base):
    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("order_id", "order_line_id"),)
    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    order_line_id: Mapped[str] = mapped_column(String(64))
    business_id: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    expire_time: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_order_id: Mapped[str | None] = mapped_column(String(64))
    last_order_line_id: Mapped[str | None] = mapped_column(String(64))
    # The order read from the query-order API (identity.marketplace.order_details).
    order_state: Mapped[str | None] = mapped_column(String(16))
    order_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    order_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    order_next_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    order_error: Mapped[str | None] = mapped_column(String(255))


class TenantInstance(Timestamps, Base):
    """A tenant bound to an instance: multi-instance binding (§0.4), keyed like tenantSync's
    idempotency key (instanceId, tenantId) and tombstoned, never deleted, so that a stale add
    cannot bring an unbound instance back."""

    __tablename__ = "tenant_instances"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    order_id: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))


class AppCredential(Timestamps, Base):
    __tablename__ = "app_credentials"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), default="")
    client_id: Mapped[str] = mapped_column(String(64))
    client_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    """AES-GCM under the master key (identity.crypto); never the plaintext."""
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))


class Department(Timestamps, Base):
    __tablename__ = "departments"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    parent_code: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))


class Member(Timestamps, Base):
    """A person of the tenant's directory, unique by (tenantId, userName) (contract §3.3)."""

    __tablename__ = "members"
    __table_args__ = (
        Index("ix_members_name_c", "tenant_id", "name", "user_name"),
        # a name search (`q`) reads the index alone; on PostgreSQL `name` is in the "C"
        # collation there (the migrations build it), where a prefix is one range
    )
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    org_code: Mapped[str] = mapped_column(String(64))
    position: Mapped[str | None] = mapped_column(String(64))
    employee_code: Mapped[str | None] = mapped_column(String(64))
    employee_type: Mapped[int | None] = mapped_column(BigInteger)
    mobile: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(128))
    work_place: Mapped[str | None] = mapped_column(String(256))
    entry_date: Mapped[str | None] = mapped_column(String(20))
    huawei_user_id: Mapped[str | None] = mapped_column(String(128))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    """Set by identity at each sign-in (not a marketplace field); the admin console shows it."""
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))


class Authorisation(Timestamps, Base):
    """A member's right to use one app: role, enable flag, authorised/cancelled/deleted."""

    __tablename__ = "authorisations"
    __table_args__ = (
        Index(
            "ix_authorisations_not_enabled",
            "tenant_id",
            "user_name",
            "state",
            sqlite_where=text("enabled = 0"),
            postgresql_where=text("enabled = false"),
        ),  # the few not enabled: where the `disabled` filter of the member list starts
    )
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))


class MemberSession(Base):
    """A browser's sign-in: one member of one tenant, holding each app the member signed in to
    through the marketplace (`SessionApp`). Only the SHA-256 of the cookie's random id is
    stored, and it changes at every login; `sid` is a separate random id that stays for the
    session's life, the one its apps' rows and the tokens issued in it refer to."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_member", "tenant_id", "user_name"),)
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sid: Mapped[str] = mapped_column(String(43), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    authenticated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    """When the member last signed in through the marketplace (each login to another of their
    apps, or a forced one, counts): the `auth_time` of tokens issued in this session."""
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    """The absolute timeout; the idle timeout runs from `last_seen_at`."""
    sign_in_method: Mapped[str | None] = mapped_column(String(16))
    """How the latest sign-in into this session was made: `marketplace` or `password` (the
    three columns below are of that sign-in too; all four are None for sessions opened before
    revision 0012). `identity.sessions.devices` says what is kept and why."""
    browser: Mapped[str | None] = mapped_column(String(64))
    """The browser in words ("Chrome 131"), parsed from the user agent, which is not kept."""
    platform: Mapped[str | None] = mapped_column(String(64))
    """The operating system in words ("Windows 10", "iOS 17.4")."""
    address: Mapped[str | None] = mapped_column(String(64))
    """The client address the sign-in came from (the one the rate limits count)."""


class SessionApp(Base):
    """One app a session signed in to through the marketplace, with that app's upstream tokens
    (encrypted at rest, bound to this row by the associated data). Ending access to one app
    deletes its row; a session left without apps is ended."""

    __tablename__ = "session_apps"
    sid: Mapped[str] = mapped_column(
        String(43), ForeignKey("sessions.sid", ondelete="CASCADE"), primary_key=True
    )
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    access_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    renewing_until: Mapped[datetime | None] = mapped_column(DateTime)
    """A lease: one request at a time renews the upstream tokens; after a transient failure
    the next attempt waits until it runs out."""


class SessionEnding(Base):
    """Why a session was ended for its member, kept for the browser that held it: the next
    request with that cookie is told once (`identity.sessions.Sessions.ending`), then the row
    goes. Keyed by the cookie's hash, so only that browser can read it; the worker drops it
    once the session would have expired anyway."""

    __tablename__ = "session_endings"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    ended_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class AccessRevocation(Base):
    """Audit of ended access: one row per member (or whole tenant, or app) whose access ended,
    why, and how many sessions it ended. Kept for `IDENTITY_RETENTION_DAYS`. The back-channel
    logouts it causes are `LogoutDelivery` rows."""

    __tablename__ = "access_revocations"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    app_id: Mapped[str | None] = mapped_column(String(64))
    user_name: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    sessions_ended: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MarketplaceCall(Base):
    """Audit of every marketplace call. Holds a hash of the payload, never the payload."""

    __tablename__ = "marketplace_calls"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    interface: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    instance_id: Mapped[str | None] = mapped_column(String(64))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    result_code: Mapped[str] = mapped_column(String(6))
    result_msg: Mapped[str] = mapped_column(String(255))
    latency_ms: Mapped[float] = mapped_column(Float)
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    signature_variant: Mapped[str | None] = mapped_column(String(16))
    changes: Mapped[dict[str, int | str | bool] | None] = mapped_column(JSON(none_as_null=True))
    """What the call changed, as its handler counted it in the call's own transaction
    (`identity.marketplace.service`): counts, flags and identifiers only (an app id, an org
    code, `"added"`), never a name, a person's details or anything else of the payload. `{}`
    when nothing changed (a debug call, a failed one); NULL on the rows written before the
    column existed (migration 0013)."""


class Nonce(Base):
    """Replay guard shared by every process (design: nonces live in the database)."""

    __tablename__ = "nonces"
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime, index=True)


# --- the OpenID Provider (identity.provider) ---------------------------------------------------


class OidcClient(Timestamps, Base):
    """An ISV app registered as an OIDC client of identity, bound to one KooGallery app."""

    __tablename__ = "oidc_clients"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the client secret (256 random bits, so a fast hash is enough); None when
    public. The secret itself is shown once and never stored."""
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2048))
    initiate_login_uri: Mapped[str | None] = mapped_column(String(2048))
    home_uri: Mapped[str | None] = mapped_column(String(2048))
    """Where the app's members open it, when it cannot start a sign-in itself."""
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    """What it may ask for beyond OpenID Connect's scopes: `directory.read`."""
    events_uri: Mapped[str | None] = mapped_column(String(2048))
    """Where its change events are POSTed (identity.events), signed per Standard Webhooks."""
    events_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    events_previous_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    events_previous_until: Mapped[datetime | None] = mapped_column(DateTime)
    """A rotated events secret keeps signing beside the new one until then."""


class SigningKey(Base):
    """A key the provider signs tokens with. The private half is AES-GCM-encrypted under the
    master key (identity.crypto); the state follows from the times (identity.provider.keys)."""

    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(8))
    private_enc: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    activates_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class OidcGrant(Base):
    """What one authorization gave one client in one session: the code, the refresh-token
    family and the access tokens issued from it all name it. Ends with its session or its
    client, or alone on code reuse, refresh-token reuse or revocation (`identity.access`): the
    row is deleted, and nothing that names it is active any more."""

    __tablename__ = "oidc_grants"
    __table_args__ = (Index("ix_oidc_grants_session_app", "sid", "app_id"),)
    grant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sid: Mapped[str] = mapped_column(String(43), ForeignKey("sessions.sid", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("oidc_clients.client_id", ondelete="CASCADE"), index=True
    )
    app_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(255))
    nonce: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class OidcCode(Base):
    """An authorization code: single-use, short-lived, stored hashed."""

    __tablename__ = "oidc_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("oidc_grants.grant_id", ondelete="CASCADE")
    )
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class RefreshToken(Base):
    """One refresh token of a grant's family, stored hashed. `used_at` is set when it is
    rotated; presenting it again revokes the whole grant."""

    __tablename__ = "oidc_refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("oidc_grants.grant_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class LogoutDelivery(Base):
    """Outbox of back-channel logout (OpenID Connect Back-Channel Logout 1.0): one row per
    ended session and client that received tokens in it and has a back-channel URI. Written
    in the transaction that ends the session; delivered by `identity worker`."""

    __tablename__ = "logout_deliveries"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(String(2048))
    sid: Mapped[str] = mapped_column(String(43))
    tenant_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(64))
    """The member the session was; the logout token's `sub` is derived from them when sent."""
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    given_up_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))


class DirectoryEvent(Base):
    """Outbox of the apps' change events: written in the transaction that made the change,
    with the tenant's next cursor, and delivered by `identity worker` (identity.events)."""

    __tablename__ = "directory_events"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    app_id: Mapped[str | None] = mapped_column(String(64))
    """The app it concerns (a member's authorisation); None: every app of the tenant."""
    type: Mapped[str] = mapped_column(String(40))
    resource_key: Mapped[str] = mapped_column(String(64))
    """The user name, the department's code or the session's sid."""
    data: Mapped[dict[str, object] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class EventCursor(Base):
    """The cursor of a tenant's last change event: taken by updating this row, so a tenant's
    event-writing transactions commit in cursor order (identity.events.outbox). Not a column
    of `tenants`, whose row every login reads FOR SHARE."""

    __tablename__ = "event_cursors"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger)


class EventStream(Base):
    """One client's delivery of one tenant's events, in cursor order: what it has received,
    the batch being sent (resent whole, under the same webhook-id, until it is answered), and
    the lease and retries of that batch."""

    __tablename__ = "event_streams"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    delivered_through: Mapped[int] = mapped_column(BigInteger)
    batch_through: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    batch_started_at: Mapped[datetime | None] = mapped_column(DateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
    skipped: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Events of batches given up on, never delivered."""
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# --- local passwords and their resets (identity.admin) -----------------------------------------


class LocalPassword(Base):
    """A member's local password (contract §6, mirrored): only once an admin's reset confirmed
    it, Argon2id-hashed. `failed_tries` counts the account's failed sign-ins from any address
    since `failures_since` (the per-account ceiling, identity.admin.lockout), kept here so that
    every process counts the same tries; its row lock serialises the account's tries."""

    __tablename__ = "local_passwords"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change: Mapped[bool] = mapped_column(Boolean)
    """Set by a reset: the member must choose a password of their own before anything else."""
    set_at: Mapped[datetime] = mapped_column(DateTime)
    failed_tries: Mapped[int] = mapped_column(Integer, default=0)
    failures_since: Mapped[datetime | None] = mapped_column(DateTime)


class LocalPasswordTry(Base):
    """Sign-in tries at one account from one client address (its rate-limit key: IPv4 as is,
    IPv6 by /64): the lockout counts failures here, so a stranger's failures lock out the
    stranger's address, never the owner's (identity.admin.lockout). `signed_in_at` marks an
    address the member has signed in from."""

    __tablename__ = "local_password_tries"
    __table_args__ = (UniqueConstraint("tenant_id", "user_name", "address"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    failed_tries: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_try_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    signed_in_at: Mapped[datetime | None] = mapped_column(DateTime)


class PasswordReset(Base):
    """One admin's reset of one member's password: a 6-digit code sent to the admin, stored
    only as a keyed hash. Rows are kept (not deleted when used): they are what the reset limits
    count, from `created_at`, the moment the code went out, unless its sending failed."""

    __tablename__ = "password_resets"
    __table_args__ = (
        Index("ix_password_resets_target", "tenant_id", "target_user_name", "created_at"),
        Index("ix_password_resets_admin", "tenant_id", "admin_user_name", "created_at"),
    )
    reset_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    target_user_name: Mapped[str] = mapped_column(String(64))
    admin_user_name: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    """sending, sent, failed, confirming, confirmed or dead (identity.admin.resets)."""
    tries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    """While `confirming`: the initial password is being sent until then."""
    code_sent_to: Mapped[str] = mapped_column(String(160))
    """Masked, as the admin was told."""
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)


class ResetLimit(Base):
    """A lock row per key the reset limits count by: (tenant, "target" or "admin", member).
    Requests for the same key take it FOR UPDATE, so they count one after another and the
    limits hold exactly across processes."""

    __tablename__ = "reset_limits"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
