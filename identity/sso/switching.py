"""A unified login (Flow A) that would replace another member's session waits for the member at
the browser to confirm it.

Flow A's callback carries no `state` (contract §5.2 step 3, §10 q12), so nothing ties it to the
browser that started the login: anyone can make a signed-in browser open a callback link with
their own unused code, and that browser would silently become them (login CSRF, RFC 6749
§10.12). Who a code signs in is known only once it is exchanged, and a code is single-use, so
the callback exchanges it, checks the member may sign in, and then, instead of opening the
session, shows a page asking "continue as …?".

What the page's form carries, the pending login, is the exchange's result: tenant, app, member,
the upstream tokens, where to land, and an expiry (`PENDING_TTL_SECONDS`). It is sealed with
AES-GCM under a key of its own (derived from the master key) and bound, as associated data, to
the hash of the session that was asked; nothing is stored server-side, so any replica can take
the answer. Only the browser holding that session can post it (with the session's CSRF token),
nobody can read or alter it, and it works once: confirming ends the session it is bound to,
under a row lock, so a second post finds no session to end.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.access import end_sessions
from identity.crypto import derive_key
from identity.models import MemberSession
from identity.sessions import Seen, Tokens, hash_id
from identity.sso import admission
from identity.sso.refusals import Refusal

if TYPE_CHECKING:
    from identity.sso.service import Completed, Sso

log = structlog.get_logger("identity.sso")

PENDING_TTL_SECONDS = 300
_CLAIM = (
    select(MemberSession.sid).where(MemberSession.id_hash == bindparam("id_hash")).with_for_update()
)


@dataclass(frozen=True)
class PendingLogin:
    """A Flow A login whose code has been exchanged, waiting for the member's confirmation."""

    tenant_id: str
    app_id: str
    user_name: str
    user_id: str | None
    """The IdP's id of the member (userinfo `id`, else `userId`), recorded once signed in."""
    access_token: str
    """Empty after a CAS ticket, which carries no upstream token."""
    refresh_token: str | None
    token_expires: int
    """When the access token expires, in Unix seconds."""
    next: str
    expires: int

    def tokens(self, now: float) -> Tokens | None:
        if not self.access_token:
            return None
        remaining = max(0, self.token_expires - int(now))
        return Tokens(self.access_token, self.refresh_token, remaining)

    def userinfo(self) -> dict[str, str | None]:
        return {"userName": self.user_name, "id": self.user_id}


@dataclass(frozen=True)
class Asked:
    """What the confirmation page shows and its form posts back."""

    signed_in_as: str
    """The account the browser's session belongs to now, `userName@tenantCode`."""
    continue_as: str
    pending: str


class PendingSeal:
    def __init__(self, master_key: str) -> None:
        self._aead = AESGCM(derive_key(master_key, "identity/sso/pending-login/v1"))

    def seal(self, session_hash: str, pending: PendingLogin) -> str:
        nonce = os.urandom(12)
        plain = json.dumps(asdict(pending)).encode()
        sealed = nonce + self._aead.encrypt(nonce, plain, session_hash.encode())
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def unseal(self, session_hash: str, sealed: str) -> PendingLogin | None:
        """The pending login, or None when forged, altered, sealed to another session or
        expired."""
        try:
            blob = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
            plain = self._aead.decrypt(blob[:12], blob[12:], session_hash.encode())
            pending = PendingLogin(**json.loads(plain))
        except (binascii.Error, ValueError, InvalidTag, TypeError):
            return None
        return pending if pending.expires > time.time() else None


def pending_login(
    tenant_id: str, app_id: str, tokens: Tokens | None, info: dict[str, object], next_: str
) -> PendingLogin:
    now = int(time.time())
    seen_id = info.get("id") or info.get("userId")
    return PendingLogin(
        tenant_id=tenant_id,
        app_id=app_id,
        user_name=str(info["userName"]),
        user_id=seen_id if isinstance(seen_id, str) and seen_id else None,
        access_token=tokens.access_token if tokens else "",
        refresh_token=tokens.refresh_token if tokens else None,
        token_expires=now + (tokens.expires_in if tokens else 0),
        next=next_,
        expires=now + PENDING_TTL_SECONDS,
    )


async def end_asked_session(connection: AsyncConnection, session_hash: str) -> bool:
    """End the session the confirmation was asked in, locking its row first: False when it
    has already ended (the confirmation was used, or the session was ended or purged
    meanwhile)."""
    sid = await connection.scalar(_CLAIM, {"id_hash": session_hash})
    if sid is None:
        return False
    await end_sessions(connection, [sid])
    return True


async def ask_first(sso: Sso, raw_id: str | None, pending: PendingLogin) -> Asked | None:
    """Flow A in a browser signed in as another member: the question to ask it. The member
    must pass admission first (a refusal comes at once, with nothing to confirm). None when
    there is no live session of someone else to replace."""
    current = await sso.sessions.peek(raw_id)
    if current is None:
        return None
    if (current.tenant_id, current.user_name) == (pending.tenant_id, pending.user_name):
        return None
    member = (pending.tenant_id, pending.app_id, pending.user_name)
    continue_as = await sso.db.run_write(lambda tx: admission.admitted_as(tx, sso.cipher, *member))
    log.info("sso.switch_asked", tenant_id=pending.tenant_id, user_name=pending.user_name)
    return Asked(
        signed_in_as=f"{current.user_name}@{current.tenant_code}",
        continue_as=continue_as,
        pending=sso.pending_seal.seal(current.id_hash, pending),
    )


async def confirm(
    sso: Sso, raw_id: str | None, csrf: str, sealed: str, seen: Seen | None = None
) -> Completed:
    """The member answered "continue as …": the pending login sealed to this browser's
    session opens its own session, and the session asked in ends, in one transaction.
    `seen`: the answering request's browser and address (the same browser's)."""
    pending = None
    if raw_id and sso.sessions.csrf_ok(raw_id, csrf):
        pending = sso.pending_seal.unseal(hash_id(raw_id), sealed)
    if raw_id is None or pending is None:
        raise Refusal("switch_unconfirmed", "csrf token or pending login wrong or expired")
    tokens, info = pending.tokens(time.time()), pending.userinfo()
    try:
        new_raw_id = await sso.open_verified(
            pending.app_id,
            pending.tenant_id,
            tokens,
            info,
            None,
            asked_in=hash_id(raw_id),
            seen=seen,
        )
    except Refusal as refusal:
        refusal.tenant_id, refusal.app_id = pending.tenant_id, pending.app_id
        raise
    return await sso.landed(
        new_raw_id, pending.app_id, pending.tenant_id, pending.user_name, pending.next
    )
