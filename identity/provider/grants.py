"""Grants, authorization codes and refresh tokens, and whether a token is still active.

A grant is what one authorization gave one client in one session's app. Its code, its refresh
tokens and the access tokens issued from it all name it, and none of them is active unless:
the grant is not revoked, its client still exists, its session has not expired and still holds
the app, and the member may still use that app (the same admission a login passes,
`identity.sessions.store.ADMITTED`). Ending a session deletes its grants (foreign keys), so every
de-provisioning path ends the tokens with it, at once. Codes and refresh tokens are stored as
SHA-256 hashes; a code presented twice, or a rotated refresh token presented again, ends the
grant and so everything issued from it (OAuth 2.0 Security BCP §4.5, §4.14), the way every grant
ends (`identity.access.end_grants`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import bindparam, exists, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.access import end_grant
from identity.db import Database, Tx
from identity.models import (
    MemberSession,
    OidcClient,
    OidcCode,
    OidcGrant,
    RefreshToken,
    SessionApp,
    SigningKey,
)
from identity.pg_cache import cacheable
from identity.sessions import store as sessions
from identity.sessions.store import Policy, SignedIn

CODE_SECONDS = 60
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def s256(verifier: str) -> str:
    """PKCE S256 (RFC 7636 §4.2), Authlib's implementation; a verifier outside RFC 7636's
    alphabet and length cannot match any challenge."""
    if not _VERIFIER.fullmatch(verifier):
        return ""
    return str(create_s256_code_challenge(verifier))


@dataclass(frozen=True)
class Live:
    """An active grant and the member, as the session's app sees them."""

    grant_id: str
    client_id: str
    scope: str
    nonce: str | None
    signed_in: SignedIn


_GRANTS = (
    sessions.ADMITTED.add_columns(
        OidcGrant.grant_id, OidcGrant.client_id, OidcGrant.scope, OidcGrant.nonce
    )
    .join(
        OidcGrant,
        (OidcGrant.sid == MemberSession.sid) & (OidcGrant.app_id == SessionApp.app_id),
    )
    .join(OidcClient, OidcClient.client_id == OidcGrant.client_id)
)
"""Every grant whose client exists, in its admitted session: the columns of `Live`."""
_LIVE = _GRANTS.where(OidcGrant.grant_id == bindparam("grant_id"))


_LIVE_SIGNED = cacheable(
    _LIVE.where(exists().where(SigningKey.kid == bindparam("kid"), SigningKey.revoked_at.is_(None)))
)
"""For an access token: the key that signed it must not have been revoked either. Its rows are
kept on PostgreSQL until a change to what it reads (`identity.pg_cache`), except the session's
`last_seen_at`, whose touches (every refresh) notify nobody: see `live_signed`."""


async def live(conn: AsyncConnection, grant_id: str, policy: Policy, now: datetime) -> Live | None:
    """The grant, if it and everything it depends on is still in force."""
    row = (await conn.execute(_LIVE, {"grant_id": grant_id})).one_or_none()
    return _in_force(row, policy, now)


async def live_signed(
    db: Database, grant_id: str, kid: str, policy: Policy, now: datetime
) -> Live | None:
    """`live` for an access token, whose signing key `kid` must not have been revoked either:
    one statement, run as a hot path's read (`Database.read_one`). A kept row that has gone
    idle is read again: the session may have been used since it was kept (its `last_seen_at`
    only moves forward, and such a touch is not notified, so that refreshes do not empty every
    process's cache), and only the database knows."""
    parameters = {"grant_id": grant_id, "kid": kid}
    row = await db.read_one(_LIVE_SIGNED, parameters)
    live = _in_force(row, policy, now)
    if live is None and row is not None:
        live = _in_force(await db.read_one(_LIVE_SIGNED, parameters, fresh=True), policy, now)
    return live


def _in_force(row: Any, policy: Policy, now: datetime) -> Live | None:
    """`row` is SQLAlchemy's `Row` or `Database.read_one`'s, which has its attributes."""
    return None if row is None else _live_of(row._asdict(), policy, now)


def _live_of(values: dict[str, Any], policy: Policy, now: datetime) -> Live | None:
    grant = Live(
        grant_id=values.pop("grant_id"),
        client_id=values.pop("client_id"),
        scope=values.pop("scope"),
        nonce=values.pop("nonce"),
        signed_in=SignedIn(**values),
    )
    if sessions.expires_at(grant.signed_in, policy) <= now:
        return None
    return grant


async def create(
    conn: AsyncConnection,
    *,
    sid: str,
    client_id: str,
    app_id: str,
    scope: str,
    nonce: str | None,
    redirect_uri: str,
    code_challenge: str | None,
    now: datetime,
) -> str:
    """A grant and its authorization code; returns the code (only its hash is stored)."""
    grant_id, code = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
    await conn.execute(
        insert(OidcGrant).values(
            grant_id=grant_id,
            sid=sid,
            client_id=client_id,
            app_id=app_id,
            scope=scope,
            nonce=nonce,
            created_at=now,
        )
    )
    await conn.execute(
        insert(OidcCode).values(
            code_hash=_hash(code),
            grant_id=grant_id,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            expires_at=now + timedelta(seconds=CODE_SECONDS),
        )
    )
    return code


class GrantError(Exception):
    """An `invalid_grant` answer (RFC 6749 §5.2); the message is for the log."""


_CODE = (
    select(
        OidcCode.grant_id,
        OidcGrant.client_id,
        OidcCode.expires_at,
        OidcCode.redirect_uri,
        OidcCode.code_challenge,
    )
    .join(OidcGrant, OidcGrant.grant_id == OidcCode.grant_id)
    .where(OidcCode.code_hash == bindparam("code"))
)
# bind names differ from column names, which UPDATE and INSERT reserve for their values
_SPEND_CODE = (
    update(OidcCode)
    .where(OidcCode.code_hash == bindparam("code"), OidcCode.used_at.is_(None))
    .values(used_at=bindparam("spent_at"))
)
_OF_REFRESH = (
    select(RefreshToken.grant_id, OidcGrant.client_id, RefreshToken.used_at)
    .join(OidcGrant, OidcGrant.grant_id == RefreshToken.grant_id)
    .where(RefreshToken.token_hash == bindparam("token"))
)
_SPEND_OWN_REFRESH = (
    update(RefreshToken)
    .where(
        RefreshToken.token_hash == bindparam("token"),
        RefreshToken.used_at.is_(None),
        exists().where(
            OidcGrant.grant_id == RefreshToken.grant_id,
            OidcGrant.client_id == bindparam("client"),
        ),
    )
    .values(used_at=bindparam("spent_at"))
    .returning(RefreshToken.grant_id)
)
"""The usual refresh in one statement: the client's own token, not used before, spent."""
_ISSUE_REFRESH = insert(RefreshToken).values(
    token_hash=bindparam("token"), grant_id=bindparam("grant"), created_at=bindparam("at")
)


_SPENT = _SPEND_OWN_REFRESH.cte("spent")
_LIVE_SPENT = (
    # the spent token's grant as a value (an InitPlan), so that PostgreSQL starts from it: as a
    # join with `spent`, a generic plan started from every active member's sessions instead
    _GRANTS.where(OidcGrant.grant_id == select(_SPENT.c.grant_id).scalar_subquery())
    .where(  # `sessions.expires_at`, in SQL
        MemberSession.expires_at > bindparam("spent_at"),
        MemberSession.last_seen_at > bindparam("idle_since"),
    )
    .cte("live")
)
_REFRESH_AT_ONCE = (
    select(_SPENT.c.grant_id.label("spent"), *_LIVE_SPENT.c)
    .select_from(_SPENT.outerjoin(_LIVE_SPENT, true()))
    .add_cte(
        insert(RefreshToken)
        .from_select(
            ["token_hash", "grant_id", "created_at"],
            select(
                bindparam("new_token", type_=RefreshToken.token_hash.type),
                _LIVE_SPENT.c.grant_id,
                bindparam("spent_at", type_=RefreshToken.created_at.type),
            ),
        )
        .cte("issued"),
        update(MemberSession)
        .where(MemberSession.id_hash.in_(select(_LIVE_SPENT.c.id_hash)))
        .values(last_seen_at=bindparam("spent_at"))
        .cte("touched"),
    )
)
"""`exchange` of the client's own unused refresh token as one statement (PostgreSQL's
data-modifying WITH): spent; the grant read as `_LIVE` reads it, if still in force; a new
refresh token issued from it and its session touched. No row: the token was not spent (unknown,
another client's or used before), which `exchange` then explains. `spent` alone: spent, but the
grant is no longer in force."""
NOT_SPENT = GrantError("refresh token not spent")


async def refresh_at_once(
    db: Database, *, token: str, client_id: str, policy: Policy, now: datetime
) -> tuple[Live, str] | GrantError | None:
    """The usual refresh in one round trip, atomic by itself (`Database.write_one`): as
    `exchange(spend=rotate_refresh)` answers, except `NOT_SPENT` when nothing was spent."""
    refresh = secrets.token_urlsafe(32)
    parameters = {
        "token": _hash(token),
        "client": client_id,
        "spent_at": now,
        "idle_since": now - policy.idle,
        "new_token": _hash(refresh),
    }
    row = await db.write_one(_REFRESH_AT_ONCE, parameters)
    if row is None:
        return NOT_SPENT
    values = row._asdict()
    del values["spent"]
    live = None if values["grant_id"] is None else _live_of(values, policy, now)
    return None if live is None else (live, refresh)


def redeem_code(
    tx: Tx,
    *,
    code: str,
    client_id: str,
    redirect_uri: str | None,
    verifier: str | None,
    now: datetime,
) -> str:
    """Use a code once; returns its grant id. A code presented again revokes its grant."""
    code_hash = _hash(code)
    row = tx.one(_CODE, {"code": code_hash})
    if row is None:
        raise GrantError("unknown code")
    grant_id, owner, expires_at, stored_redirect, challenge = row
    if owner != client_id:  # before it is spent: another client cannot use up someone's code
        raise GrantError("code issued to another client")
    if not tx.run(_SPEND_CODE, {"code": code_hash, "spent_at": now}):
        end_grant(tx, grant_id)
        raise GrantError("code used twice: its grant has ended")
    if expires_at <= now:
        raise GrantError("code expired")
    if redirect_uri != stored_redirect:
        raise GrantError("redirect_uri differs from the authorization request's")
    if challenge is not None:
        if not verifier or not hmac.compare_digest(s256(verifier), challenge):
            raise GrantError("PKCE code_verifier missing or wrong")
    elif verifier:
        raise GrantError("code_verifier sent for a request without code_challenge")
    return str(grant_id)


async def grant_of_refresh(conn: AsyncConnection, token: str) -> tuple[str, str, bool] | None:
    """(grant id, client id, already rotated) of a refresh token, or None."""
    row = (await conn.execute(_OF_REFRESH, {"token": _hash(token)})).one_or_none()
    return None if row is None else (row[0], row[1], row[2] is not None)


def rotate_refresh(tx: Tx, *, token: str, client_id: str, now: datetime) -> str:
    """Spend a refresh token; returns its grant id. A rotated one presented again (a thief or
    the client racing itself) ends the whole grant."""
    token_hash = _hash(token)
    spent = tx.one(_SPEND_OWN_REFRESH, {"token": token_hash, "client": client_id, "spent_at": now})
    if spent is not None:
        return str(spent.grant_id)
    row = tx.one(_OF_REFRESH, {"token": token_hash})  # why not: unknown, another's, or used
    if row is None or row.client_id != client_id:
        raise GrantError("unknown refresh token")
    end_grant(tx, row.grant_id)
    raise GrantError("refresh token used twice: its grant has ended")


def exchange(
    tx: Tx, *, spend: Callable[[Tx], str], policy: Policy, now: datetime
) -> tuple[Live, str] | GrantError | None:
    """The token endpoint's transaction (`Database.run_write`): `spend` uses up a code or a
    refresh token and names its grant; if the grant is still in force, a new refresh token is
    issued from it and its session counts as in use (an app refreshing its tokens is the member
    at work, even when the browser never comes back to identity itself). A refused code or
    token is returned, not raised, so that what its refusal wrote (a reused one ends its
    grant) is committed; None when the grant is no longer in force."""
    try:
        grant_id = spend(tx)
    except GrantError as refused:
        return refused
    live = _in_force(tx.one(_LIVE, {"grant_id": grant_id}), policy, now)
    if live is None:
        return None
    refresh = secrets.token_urlsafe(32)
    tx.send(_ISSUE_REFRESH, {"token": _hash(refresh), "grant": grant_id, "at": now})
    tx.send(sessions.TOUCH, {"session": live.signed_in.id_hash, "seen_at": now})
    return live, refresh
