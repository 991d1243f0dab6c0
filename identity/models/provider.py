"""The OpenID Provider: clients, signing keys, grants, codes, refresh tokens and the
back-channel logout outbox (identity.provider)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from identity.db import utcnow
from identity.models.base import Base, Timestamps


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
