"""`Sessions`: the member sessions as the marketplace sign-in, the OpenID Provider and the admin
console use them.

Transactions: each operation here owns its own, short ones. Opening a session follows an
outbound call (the auth centre's code exchange, or a password hash), and renewing one makes an
outbound call in the middle, so no transaction may span the operation: on SQLite it would hold
the write lock for a network round trip. Reads that need no snapshot run on an autocommit
connection (`Database.single_read`), the hot path of every signed-in request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

from sqlalchemy import bindparam, func, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.crypto import Cipher, Mac
from identity.db import Database, Tx, in_tx, utcnow
from identity.models import Member
from identity.sessions import devices, store
from identity.sessions.browser import Cookies, allowed, origin
from identity.sessions.devices import Device, Seen
from identity.sessions.store import Ending, Policy, SignedIn, Tokens
from identity.settings import Settings

Admit = Callable[[Tx, Cipher, str, str, str, Callable[[Tx], None]], None]
"""Raises unless the member (tenant, app, user name) may use the app now, under the locks a
de-provisioning path takes exclusively (`identity.sso.admission.admit`); runs the sign-in's
record (the last argument) on the member's row under the tenant's lock, before it locks that
row shared."""
Check = Callable[[AsyncConnection], Awaitable[None]]
"""A caller's own condition for opening a session, checked in the same transaction; it raises
its caller's error to refuse."""
Renew = Callable[[SignedIn], Awaitable[SignedIn | None]]
"""Renews an app's upstream tokens near their expiry: the session as renewed, unchanged (a
transient failure), or None once it has ended (`identity.sso.renewal`)."""


def policy_for(settings: Settings) -> Policy:
    return Policy(
        idle=timedelta(seconds=settings.session_idle_seconds),
        absolute=timedelta(seconds=settings.session_absolute_seconds),
        renew_margin=timedelta(seconds=settings.token_renew_margin_seconds),
        renewal_lease=timedelta(
            seconds=max(settings.token_renew_retry_seconds, settings.upstream_timeout_seconds + 1)
        ),
    )


RECORD_LOGIN_EVERY = timedelta(minutes=1)
"""A member's last sign-in is recorded at most this often (the console shows it to the minute):
a member opening several apps in a row, or signing in from several browsers at once, writes
their row once, instead of once per login, each waiting for the others' locks on it."""

_MEMBER = (Member.tenant_id == bindparam("tenant"), Member.user_name == bindparam("member"))
_STALE = or_(Member.last_login_at.is_(None), Member.last_login_at < bindparam("stale_before"))
_RECORD_LOGIN = (
    update(Member)
    .where(*_MEMBER, _STALE)
    .values(last_login_at=bindparam("now"), updated_at=Member.updated_at)
)
"""A sign-in is not a change of the member's directory entry: `updated_at` stays."""
_RECORD_LOGIN_AND_ID = (
    update(Member)
    .where(*_MEMBER, or_(_STALE, Member.huawei_user_id.is_(None)))
    .values(
        last_login_at=bindparam("now"),
        updated_at=Member.updated_at,
        huawei_user_id=func.coalesce(Member.huawei_user_id, bindparam("user_id")),
    )
)


def _record_login(tx: Tx, *, tenant: str, member: str, user_id: str | None) -> None:
    """When the member last signed in (the admin console shows it), and the IdP's user id
    the first time it is seen, in the login's transaction (`Admit` says where). Within
    `RECORD_LOGIN_EVERY` of the last record (and the id known) nothing is written: the
    statement matches no row, so it takes no lock either."""
    now = utcnow()
    params = {
        "tenant": tenant,
        "member": member,
        "now": now,
        "stale_before": now - RECORD_LOGIN_EVERY,
    }
    if user_id:
        params["user_id"] = user_id[:128]
    tx.send(_RECORD_LOGIN_AND_ID if user_id else _RECORD_LOGIN, params)


class _AnotherMembers(Exception):
    """The browser's session is another member's: the login's transaction rolls back and runs
    again, ending that session first."""


class Sessions:
    """Opens a member's session once they proved who they are (through the marketplace or a
    local password), finds the signed-in member on each request, signs the CSRF tokens of forms
    posted in a session, and tells a browser once why its session ended.

    Ending goes through `identity.access`: `end_access` when a member loses the right to use
    an app (it records why), `end_sessions` for every other end (logout, expiry, another login
    in the same browser)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        cipher: Cipher,
        *,
        admit: Admit,
        renew: Renew | None = None,
    ) -> None:
        assert settings.secret_key is not None
        self.db, self.cipher = db, cipher
        self.policy = policy_for(settings)
        base_url = settings.base_url.rstrip("/")
        self.cookies = Cookies.for_service(base_url, settings.session_cookie_secure)
        self.post_login_url = settings.post_login_url
        self.allowed_origins = {origin(base_url)} | {
            origin(o) for o in settings.allowed_redirect_origins
        }
        self._csrf = Mac(settings.secret_key.get_secret_value(), "sso-csrf")
        self._admit, self._renew = admit, renew

    def checked_redirect(self, target: str | None, default: str) -> str | None:
        """`target` when the allow-list admits it, `default` when none is given, else None."""
        if not target:
            return default
        return target if allowed(target, self.allowed_origins) else None

    def csrf_token(self, raw_session_id: str) -> str:
        """A form's CSRF token: a MAC of the session, so it needs no storage."""
        return self._csrf.sign(store.hash_id(raw_session_id))

    def csrf_ok(self, raw_session_id: str, token: str) -> bool:
        return self._csrf.verify(store.hash_id(raw_session_id), token)

    async def open(
        self,
        tenant_id: str,
        app_id: str,
        user_name: str,
        *,
        tokens: Tokens | None,
        old_raw_session_id: str | None,
        check: Check | None = None,
        user_id: str | None = None,
        seen: Seen | None = None,
        method: devices.Method | None = None,
    ) -> str:
        """Admit the member and open (or join) their session, holding `app_id` with the
        upstream `tokens` (none for a local password or a CAS ticket); returns the raw id for
        the cookie. `method`: how the member signed in, by default as the tokens say (the
        marketplace with them, a local password without).
        `check` is the caller's own condition, in the same transaction. `user_id`, the IdP's
        id of the member, is recorded the first time it is seen. `seen` is the sign-in's
        request: the session keeps its method, browser, platform and address
        (`devices.device`, parsed here, once per login, outside the transaction).

        The browser's session (`old_raw_session_id`) is joined when it is this member's, under
        a new cookie id (a second app joins it, the first stays signed in); a session of
        another member ends in the same transaction. The usual login is plain statements in
        one `run_write`; only a `check` or another member's session, whose ending is async
        (`identity.access.end_sessions`), takes a transaction of async statements around the
        same plain ones."""
        old_hash = store.hash_id(old_raw_session_id) if old_raw_session_id else None
        member = (tenant_id, app_id, user_name)
        method = method or ("password" if tokens is None else "marketplace")
        device = devices.device(method, seen)

        record = partial(_record_login, tenant=tenant_id, member=user_name, user_id=user_id)

        def admitted(tx: Tx) -> None:
            self._admit(tx, self.cipher, *member, record)

        def opened(tx: Tx) -> str:
            return self._opened(tx, old_hash, *member, tokens, device)

        def admitted_and_opened(tx: Tx) -> str:
            admitted(tx)
            return opened(tx)

        raw_id = None
        if check is None:
            with contextlib.suppress(_AnotherMembers):
                raw_id = await self.db.run_write(admitted_and_opened)
        if raw_id is None:
            async with self.db.write() as conn:
                await in_tx(conn, admitted)
                if check is not None:
                    await check(conn)
                try:
                    raw_id = await in_tx(conn, opened)
                except _AnotherMembers:  # found before anything was written
                    assert old_hash is not None
                    await store.end_session(conn, old_hash)
                    raw_id = await in_tx(conn, opened)
        return raw_id

    def _opened(
        self,
        tx: Tx,
        old_hash: str | None,
        tenant_id: str,
        app_id: str,
        user_name: str,
        tokens: Tokens | None,
        device: Device,
    ) -> str:
        """The member's session holding `app_id`, as the new raw cookie id: the browser's
        session under a new cookie id when it is this member's, else a new one. Raises
        `_AnotherMembers` when the browser's session is another member's: it must end first."""
        now = utcnow()
        held = store.owner(tx, old_hash) if old_hash else None
        if held is None:
            raw_id, sid = store.create(
                tx, self.policy, tenant_id=tenant_id, user_name=user_name, device=device, now=now
            )
        elif (held.tenant_id, held.user_name) == (tenant_id, user_name):
            assert old_hash is not None
            raw_id, sid = store.rotate(tx, old_hash, device, now), held.sid
        else:
            raise _AnotherMembers
        store.add_app(
            tx, self.cipher, sid=sid, app_id=app_id, tokens=tokens, now=now,
            new_session=held is None,
        )  # fmt: skip
        return raw_id

    async def current(
        self, raw_session_id: str | None, app_id: str | None = None
    ) -> SignedIn | None:
        """The signed-in member as `app_id` sees the session (the app signed in to last when
        None), or None. Ends expired sessions; renews the app's tokens near expiry."""
        if not raw_session_id:
            return None
        id_hash, now = store.hash_id(raw_session_id), utcnow()
        signed_in = await store.read(self.db, id_hash, app_id)
        if signed_in is None or store.expires_at(signed_in, self.policy) <= now:
            if signed_in is not None:
                async with self.db.write() as conn:
                    await store.end_session(conn, id_hash)
            return None
        token_expiry = signed_in.token_expires_at
        if (
            self._renew is not None
            and token_expiry is not None
            and token_expiry - now <= self.policy.renew_margin
        ):
            return await self._renew(signed_in)
        if now - signed_in.last_seen_at >= self.policy.touch_every:
            async with self.db.write() as conn:
                await store.touch(conn, id_hash, now)
        return signed_in

    async def peek(self, raw_session_id: str | None) -> SignedIn | None:
        """The browser's session while it lasts and its member may still use an app, read
        without touching or renewing it."""
        if not raw_session_id:
            return None
        signed_in = await store.read(self.db, store.hash_id(raw_session_id))
        if signed_in is None or store.expires_at(signed_in, self.policy) <= utcnow():
            return None
        return signed_in

    async def ending(self, raw_session_id: str | None) -> Ending | None:
        """Why this browser's session was ended for its member, told once."""
        if not raw_session_id:
            return None
        async with self.db.write() as conn:
            return await store.take_ending(conn, store.hash_id(raw_session_id), utcnow())
