"""Server-side member sessions: created at login, checked on every use, ended at once.

The cookie carries a random 256-bit id; the table keeps only its SHA-256, so a copy of the
database does not hold usable sessions. The upstream access and refresh tokens are encrypted
with the row's hash as associated data. Functions here take the caller's session and never
commit (see `identity.sso.service` for who owns the transactions). They run on a Core
connection with statements built once: every request of a signed-in member passes here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.crypto import Cipher, Context
from identity.directory import bindings
from identity.models import ACTIVE, AppCredential, Authorisation, Member, Tenant
from identity.models import Session as MemberSession
from identity.sso.upstream import Tokens


@dataclass(frozen=True)
class Policy:
    idle: timedelta
    absolute: timedelta
    renew_margin: timedelta
    renewal_lease: timedelta
    """How long one request holds the right to renew (longer than an upstream call can take),
    and how long a transient failure waits before the next attempt."""

    @property
    def touch_every(self) -> timedelta:
        """How stale `last_seen_at` may get before a request rewrites it: one write per minute
        at most, and always well inside the idle timeout."""
        return min(timedelta(seconds=60), self.idle / 4)


@dataclass(frozen=True)
class SignedIn:
    """The member a session belongs to, as `GET /sso/session` describes them."""

    id_hash: str
    tenant_id: str
    tenant_code: str
    app_id: str
    user_name: str
    name: str
    role: str
    org_code: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    token_expires_at: datetime | None
    renewing_until: datetime | None
    refresh_token_enc: bytes | None


_INSERT = insert(MemberSession)


def hash_id(raw_id: str) -> str:
    return hashlib.sha256(raw_id.encode()).hexdigest()


def _context(id_hash: str, which: str) -> Context:
    return ("sessions", id_hash, which)


def encrypt_tokens(cipher: Cipher, id_hash: str, tokens: Tokens) -> dict[str, bytes | None]:
    refresh = tokens.refresh_token
    return {
        "access_token_enc": cipher.encrypt(tokens.access_token, _context(id_hash, "access")),
        "refresh_token_enc": (
            cipher.encrypt(refresh, _context(id_hash, "refresh")) if refresh else None
        ),
    }


def decrypt_refresh_token(cipher: Cipher, signed_in: SignedIn) -> str | None:
    blob = signed_in.refresh_token_enc
    return cipher.decrypt(blob, _context(signed_in.id_hash, "refresh")) if blob else None


async def create(
    connection: AsyncConnection,
    cipher: Cipher,
    policy: Policy,
    *,
    tenant_id: str,
    app_id: str,
    user_name: str,
    tokens: Tokens,
    now: datetime,
) -> str:
    """Insert a new session and return the raw id for the cookie (never stored)."""
    raw_id = secrets.token_urlsafe(32)
    id_hash = hash_id(raw_id)
    await connection.execute(
        _INSERT,
        {
            "id_hash": id_hash,
            "tenant_id": tenant_id,
            "app_id": app_id,
            "user_name": user_name,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": now + policy.absolute,
            "token_expires_at": now + timedelta(seconds=tokens.expires_in),
            **encrypt_tokens(cipher, id_hash, tokens),
        },
    )
    return raw_id


_SAME_MEMBER = (Member.tenant_id == MemberSession.tenant_id) & (
    Member.user_name == MemberSession.user_name
)
_LOAD = (
    select(
        MemberSession.id_hash,
        MemberSession.tenant_id,
        Tenant.tenant_code,
        MemberSession.app_id,
        MemberSession.user_name,
        Member.name,
        Authorisation.role,
        Member.org_code,
        MemberSession.created_at,
        MemberSession.last_seen_at,
        MemberSession.expires_at,
        MemberSession.token_expires_at,
        MemberSession.renewing_until,
        MemberSession.refresh_token_enc,
    )
    .join(Tenant, Tenant.tenant_id == MemberSession.tenant_id)
    .join(
        AppCredential,
        (AppCredential.tenant_id == MemberSession.tenant_id)
        & (AppCredential.app_id == MemberSession.app_id),
    )
    .join(Member, _SAME_MEMBER)
    .join(
        Authorisation,
        (Authorisation.tenant_id == MemberSession.tenant_id)
        & (Authorisation.app_id == MemberSession.app_id)
        & (Authorisation.user_name == MemberSession.user_name),
    )
    .where(
        MemberSession.id_hash == bindparam("id_hash"),
        Tenant.state == ACTIVE,
        bindings.open_for_sign_in(),
        AppCredential.state == ACTIVE,
        bindings.instance_live(AppCredential.tenant_id, AppCredential.instance_id),
        Member.state == ACTIVE,
        Authorisation.state == ACTIVE,
        Authorisation.enabled.is_(True),
        bindings.instance_live(Authorisation.tenant_id, Authorisation.instance_id),
    )
)


async def load(connection: AsyncConnection, id_hash: str) -> SignedIn | None:
    """The session and its member, only while the member may still use the app.

    De-provisioning deletes sessions (`identity.access`); checking here as well everything a
    login requires (tenant, the app's instance, credential, member, authorisation) means a
    session never outlives any of them, whatever path changed it.
    """
    row = (await connection.execute(_LOAD, {"id_hash": id_hash})).one_or_none()
    return None if row is None else SignedIn(**row._asdict())


def expires_at(signed_in: SignedIn, policy: Policy) -> datetime:
    """The earlier of the absolute timeout and the idle timeout."""
    return min(signed_in.expires_at, signed_in.last_seen_at + policy.idle)


_DELETE = delete(MemberSession).where(MemberSession.id_hash == bindparam("id_hash"))
_TOUCH = (  # bind names differ from column names, which UPDATE reserves for its SET clause
    update(MemberSession)
    .where(MemberSession.id_hash == bindparam("session"))
    .values(last_seen_at=bindparam("seen_at"))
)


async def end(connection: AsyncConnection, id_hash: str) -> bool:
    return bool((await connection.execute(_DELETE, {"id_hash": id_hash})).rowcount)


async def touch(connection: AsyncConnection, id_hash: str, now: datetime) -> None:
    await connection.execute(_TOUCH, {"session": id_hash, "seen_at": now})


_CLAIM = (  # bind names differ from column names, which UPDATE reserves for its SET clause
    update(MemberSession)
    .where(
        MemberSession.id_hash == bindparam("session"),
        or_(
            MemberSession.renewing_until.is_(None),
            MemberSession.renewing_until <= bindparam("now"),
        ),
    )
    .values(renewing_until=bindparam("until"))
)


async def claim_renewal(
    connection: AsyncConnection, id_hash: str, now: datetime, policy: Policy
) -> bool:
    """Take the lease to renew this session's tokens; False when another request holds it.

    The auth centre rotates the refresh token at each use, so two requests renewing at once
    would have one of them fail and end a healthy session: only the lease holder renews."""
    params = {"session": id_hash, "now": now, "until": now + policy.renewal_lease}
    return bool((await connection.execute(_CLAIM, params)).rowcount)


async def store_renewed(
    connection: AsyncConnection,
    cipher: Cipher,
    signed_in: SignedIn,
    tokens: Tokens,
    now: datetime,
) -> bool:
    """Keep renewed tokens and release the lease; conditional on the refresh token this
    request used, so nothing older can ever overwrite something newer."""
    values = encrypt_tokens(cipher, signed_in.id_hash, tokens)
    if values["refresh_token_enc"] is None:  # the auth centre kept the old refresh token
        values["refresh_token_enc"] = signed_in.refresh_token_enc
    result = await connection.execute(
        update(MemberSession)
        .where(
            MemberSession.id_hash == signed_in.id_hash,
            MemberSession.refresh_token_enc == signed_in.refresh_token_enc,
        )
        .values(
            token_expires_at=now + timedelta(seconds=tokens.expires_in),
            last_seen_at=now,
            renewing_until=None,
            **values,
        )
    )
    return bool(result.rowcount)
