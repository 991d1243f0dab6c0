"""The member sessions table and the statements over it: created at login, checked on every
use, ended at once.

A browser's session belongs to one member of one tenant and holds each app the member signed in
to through the marketplace (`session_apps`), each with its own upstream tokens. The cookie
carries a random 256-bit id; the table keeps only its SHA-256, so a copy of the database does
not hold usable sessions. `sid` is a second, public random id, the one tokens carry. The
upstream access and refresh tokens are encrypted with the session and the app as associated
data. Functions here take the caller's connection and never commit (`identity.sessions.service`
owns the transactions). They run on a Core connection with statements built once:
every request of a signed-in member passes here. One table's statements in one place, the
read, the writes and the lease together, is why it stays one module past 400 lines.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.access import end_sessions
from identity.crypto import Cipher, Context
from identity.db import Database, Tx
from identity.directory.eligibility import MAY_USE_APP
from identity.models import (
    AppCredential,
    Authorisation,
    Member,
    MemberSession,
    SessionApp,
    SessionEnding,
    Tenant,
)
from identity.sessions.devices import Device
from identity.sqlite_inline import AnySelect, insert_naming


@dataclass(frozen=True)
class Tokens:
    """The tokens a tenant's auth centre issued for one app of a session (kept encrypted)."""

    access_token: str
    refresh_token: str | None
    expires_in: int


@dataclass(frozen=True)
class Policy:
    """How long a session lasts: `idle` without use, `absolute` at most, and when its upstream
    tokens are renewed (`renew_margin` before they expire)."""

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
    """A session as one of its apps sees it: the member, as `GET /sso/session` describes them."""

    id_hash: str
    sid: str
    tenant_id: str
    tenant_code: str
    app_id: str
    user_name: str
    name: str
    role: str
    org_code: str
    email: str | None
    created_at: datetime
    authenticated_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    token_expires_at: datetime | None
    renewing_until: datetime | None
    refresh_token_enc: bytes | None


def hash_id(raw_id: str) -> str:
    return hashlib.sha256(raw_id.encode()).hexdigest()


def _context(sid: str, app_id: str, which: str) -> Context:
    return ("sessions", sid, app_id, which)


def encrypt_tokens(
    cipher: Cipher, sid: str, app_id: str, tokens: Tokens
) -> dict[str, bytes | None]:
    refresh = tokens.refresh_token
    return {
        "access_token_enc": cipher.encrypt(tokens.access_token, _context(sid, app_id, "access")),
        "refresh_token_enc": (
            cipher.encrypt(refresh, _context(sid, app_id, "refresh")) if refresh else None
        ),
    }


def decrypt_refresh_token(cipher: Cipher, signed_in: SignedIn) -> str | None:
    blob = signed_in.refresh_token_enc
    context = _context(signed_in.sid, signed_in.app_id, "refresh")
    return cipher.decrypt(blob, context) if blob else None


@dataclass(frozen=True)
class Owner:
    tenant_id: str
    user_name: str
    sid: str


_INSERT = insert_naming(
    MemberSession,
    "id_hash",
    "sid",
    "tenant_id",
    "user_name",
    "created_at",
    "authenticated_at",
    "last_seen_at",
    "expires_at",
    "sign_in_method",
    "browser",
    "platform",
    "address",
)
_OWNER = select(MemberSession.tenant_id, MemberSession.user_name, MemberSession.sid).where(
    MemberSession.id_hash == bindparam("id_hash")
)
_ROTATE = (  # bind names differ from column names, which UPDATE reserves for its SET clause
    update(MemberSession)
    .where(MemberSession.id_hash == bindparam("old"))
    .values(
        id_hash=bindparam("new"),
        authenticated_at=bindparam("now"),
        sign_in_method=bindparam("seen_method"),
        browser=bindparam("seen_browser"),
        platform=bindparam("seen_platform"),
        address=bindparam("seen_address"),
    )
)
_DROP_APP = delete(SessionApp).where(
    SessionApp.sid == bindparam("sid"), SessionApp.app_id == bindparam("app_id")
)
_ADD_APP = insert_naming(
    SessionApp,
    "sid",
    "app_id",
    "created_at",
    "access_token_enc",
    "refresh_token_enc",
    "token_expires_at",
)


def create(
    tx: Tx, policy: Policy, *, tenant_id: str, user_name: str, device: Device, now: datetime
) -> tuple[str, str]:
    """Insert a new session, holding no app yet, with what it shows of the sign-in (`device`):
    one statement; returns the raw id for the cookie (never stored) and the session's `sid`."""
    raw_id, sid = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    tx.send(
        _INSERT,
        {
            "id_hash": hash_id(raw_id),
            "sid": sid,
            "tenant_id": tenant_id,
            "user_name": user_name,
            "created_at": now,
            "authenticated_at": now,
            "last_seen_at": now,
            "expires_at": now + policy.absolute,
            "sign_in_method": device.method,
            "browser": device.browser,
            "platform": device.platform,
            "address": device.address,
        },
    )
    return raw_id, sid


def owner(tx: Tx, id_hash: str) -> Owner | None:
    """Whose session this is, whatever state its apps are in. A session's member never
    changes: only whether it still exists."""
    return _owner(tx.one(_OWNER, {"id_hash": id_hash}))


async def read_owner(db: Database, id_hash: str) -> Owner | None:
    """`owner` as a single read of its own (`Database.read_one`)."""
    return _owner(await db.read_one(_OWNER, {"id_hash": id_hash}))


def _owner(row: Any) -> Owner | None:
    return None if row is None else Owner(*row)


def rotate(tx: Tx, id_hash: str, device: Device, now: datetime) -> str:
    """A new login of the session's member: a new cookie id (a cookie planted before the login
    is worth nothing after it), a new authentication time, and this sign-in's method, browser
    and address in place of the last one's; returns the raw id."""
    raw_id = secrets.token_urlsafe(32)
    seen = {
        "seen_method": device.method,
        "seen_browser": device.browser,
        "seen_platform": device.platform,
        "seen_address": device.address,
    }
    tx.send(_ROTATE, {"old": id_hash, "new": hash_id(raw_id), "now": now, **seen})
    return raw_id


def add_app(
    tx: Tx,
    cipher: Cipher,
    *,
    sid: str,
    app_id: str,
    tokens: Tokens | None,
    now: datetime,
    new_session: bool = False,
) -> None:
    """Hold `app_id` in the session, with fresh upstream tokens (replacing older ones, unless
    the session was `new_session`, created in this transaction and holding none); none for a
    local-password sign-in, which has no auth centre session to renew."""
    if not new_session:
        tx.send(_DROP_APP, {"sid": sid, "app_id": app_id})
    held: dict[str, object] = {
        "access_token_enc": None,
        "refresh_token_enc": None,
        "token_expires_at": None,
    }
    if tokens is not None:
        held = {
            "token_expires_at": now + timedelta(seconds=tokens.expires_in),
            **encrypt_tokens(cipher, sid, app_id, tokens),
        }
    tx.send(_ADD_APP, {"sid": sid, "app_id": app_id, "created_at": now, **held})


_SAME_MEMBER = (Member.tenant_id == MemberSession.tenant_id) & (
    Member.user_name == MemberSession.user_name
)
ADMITTED = (
    select(
        MemberSession.id_hash,
        MemberSession.sid,
        MemberSession.tenant_id,
        Tenant.tenant_code,
        SessionApp.app_id,
        MemberSession.user_name,
        Member.name,
        Authorisation.role,
        Member.org_code,
        Member.email,
        MemberSession.created_at,
        MemberSession.authenticated_at,
        MemberSession.last_seen_at,
        MemberSession.expires_at,
        SessionApp.token_expires_at,
        SessionApp.renewing_until,
        SessionApp.refresh_token_enc,
    )
    .join(SessionApp, SessionApp.sid == MemberSession.sid)
    .join(Tenant, Tenant.tenant_id == MemberSession.tenant_id)
    .join(
        AppCredential,
        (AppCredential.tenant_id == MemberSession.tenant_id)
        & (AppCredential.app_id == SessionApp.app_id),
    )
    .join(Member, _SAME_MEMBER)
    .join(
        Authorisation,
        (Authorisation.tenant_id == MemberSession.tenant_id)
        & (Authorisation.app_id == SessionApp.app_id)
        & (Authorisation.user_name == MemberSession.user_name),
    )
    .where(*MAY_USE_APP)
)
"""Every session joined to each app it holds that its member may still use: the columns of
`SignedIn`. Statements here and in identity.provider narrow it to one session and app."""
_SELECT = ADMITTED.where(MemberSession.id_hash == bindparam("id_hash"))
_LOAD_APP = _SELECT.where(SessionApp.app_id == bindparam("app_id"))
_LOAD_LATEST = _SELECT.order_by(SessionApp.created_at.desc()).limit(1)


async def load(
    connection: AsyncConnection, id_hash: str, app_id: str | None = None
) -> SignedIn | None:
    """The session as `app_id` sees it (the app most recently signed in to when None), only
    while the member may still use that app, in the caller's transaction.

    De-provisioning deletes sessions and their apps (`identity.access`); checking here as well
    everything a login requires (tenant, the app's instance, credential, member,
    authorisation) means a session never outlives any of them, whatever path changed it.
    """
    row = (await connection.execute(*_loading(id_hash, app_id))).one_or_none()
    return None if row is None else SignedIn(**row._asdict())


async def read(db: Database, id_hash: str, app_id: str | None = None) -> SignedIn | None:
    """`load` as a single read of its own (`Database.read_one`): a page's or a login's look at
    the browser's session."""
    row = await db.read_one(*_loading(id_hash, app_id))
    return None if row is None else SignedIn(**row._asdict())


def _loading(id_hash: str, app_id: str | None) -> tuple[AnySelect, dict[str, str]]:
    if app_id is None:
        return _LOAD_LATEST, {"id_hash": id_hash}
    return _LOAD_APP, {"id_hash": id_hash, "app_id": app_id}


def expires_at(signed_in: SignedIn, policy: Policy) -> datetime:
    """The earlier of the absolute timeout and the idle timeout."""
    return min(signed_in.expires_at, signed_in.last_seen_at + policy.idle)


TOUCH = (  # bind names differ from column names, which UPDATE reserves for its SET clause
    update(MemberSession)
    .where(MemberSession.id_hash == bindparam("session"))
    .values(last_seen_at=bindparam("seen_at"))
)


_SID = select(MemberSession.sid).where(MemberSession.id_hash == bindparam("id_hash"))


async def end_session(connection: AsyncConnection, id_hash: str) -> bool:
    """End the whole session, every app it holds (`identity.access.end_sessions`)."""
    sid = await connection.scalar(_SID, {"id_hash": id_hash})
    if sid is None:
        return False
    await end_sessions(connection, [sid])
    return True


async def end_session_app(connection: AsyncConnection, sid: str, app_id: str) -> None:
    """End one app's part of the session; the session ends with its last app."""
    await end_sessions(connection, [sid], app_id)


async def touch(connection: AsyncConnection, id_hash: str, now: datetime) -> None:
    await connection.execute(TOUCH, {"session": id_hash, "seen_at": now})


_CLAIM = (  # bind names differ from column names, which UPDATE reserves for its SET clause
    update(SessionApp)
    .where(
        SessionApp.sid == bindparam("session"),
        SessionApp.app_id == bindparam("app"),
        SessionApp.token_expires_at == bindparam("seen_expiry"),
        or_(
            SessionApp.renewing_until.is_(None),
            SessionApp.renewing_until <= bindparam("now"),
        ),
    )
    .values(renewing_until=bindparam("until"))
)


async def claim_renewal(
    connection: AsyncConnection, signed_in: SignedIn, now: datetime, policy: Policy
) -> bool:
    """Take the lease to renew this app's upstream tokens; False when another request holds
    it, or when the tokens this request saw have been renewed meanwhile (it would spend a refresh
    token already spent). The auth centre rotates the refresh token at each use, so two requests
    renewing at once would have one of them fail and end a healthy session: only the lease
    holder renews, and only from the tokens as they are."""
    params = {
        "session": signed_in.sid,
        "app": signed_in.app_id,
        "seen_expiry": signed_in.token_expires_at,
        "now": now,
        "until": now + policy.renewal_lease,
    }
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
    values = encrypt_tokens(cipher, signed_in.sid, signed_in.app_id, tokens)
    if values["refresh_token_enc"] is None:  # the auth centre kept the old refresh token
        values["refresh_token_enc"] = signed_in.refresh_token_enc
    result = await connection.execute(
        update(SessionApp)
        .where(
            SessionApp.sid == signed_in.sid,
            SessionApp.app_id == signed_in.app_id,
            SessionApp.refresh_token_enc == signed_in.refresh_token_enc,
        )
        .values(
            token_expires_at=now + timedelta(seconds=tokens.expires_in),
            renewing_until=None,
            **values,
        )
    )
    await touch(connection, signed_in.id_hash, now)
    return bool(result.rowcount)


@dataclass(frozen=True)
class Ending:
    """Why the browser's session was ended for its member (`identity.access.end_access`)."""

    tenant_id: str
    app_id: str | None
    reason: str


_TAKE_ENDING = (
    delete(SessionEnding)
    .where(
        SessionEnding.id_hash == bindparam("id_hash"), SessionEnding.expires_at > bindparam("now")
    )
    .returning(SessionEnding.tenant_id, SessionEnding.app_id, SessionEnding.reason)
)


async def take_ending(connection: AsyncConnection, id_hash: str, now: datetime) -> Ending | None:
    """Why this cookie's session was ended, once: the row goes as it is read."""
    row = (await connection.execute(_TAKE_ENDING, {"id_hash": id_hash, "now": now})).one_or_none()
    return None if row is None else Ending(row[0], row[1], row[2])
