"""Login (Flow A and B), the session on each request, token renewal and logout (contract §5).

These operations call the tenant's auth centre, and no transaction may stay open across an
outbound call (on SQLite it would hold the write lock for the length of a network round trip).
So each of them owns its transactions: read what the call needs, call out, then write in one
short transaction that checks everything again under the tenant's lock and the member's row
locks, the same locks every de-provisioning path takes. A login racing a de-provisioning sync
therefore either sees the change and is refused, or commits first and has its session ended.

At about 470 lines this module is past the house limit of ~400: `Sso` still holds the member
sessions (cookies, renewal, ending, CSRF) that the provider and the admin console use too.
Moving them into a package of their own is the planned split; until then, keep additions here
small and put new flows in modules beside it (as `switching` does).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urljoin

import structlog
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.crypto import Cipher, Mac
from identity.db import Database, utcnow
from identity.models import Member, Tenant
from identity.models import Session as MemberSession
from identity.observability import Metrics
from identity.settings import Settings
from identity.sso import admission, sessions, switching
from identity.sso.limits import Buckets, address_key
from identity.sso.redirects import (
    LOGIN_TTL_SECONDS,
    Cookies,
    LoginState,
    allowed,
    origin,
    seal,
    unseal,
)
from identity.sso.refusals import UPSTREAM_REASONS, Refusal
from identity.sso.sessions import Policy, SignedIn
from identity.sso.switching import Asked, PendingSeal, pending_login
from identity.sso.upstream import (
    AUTHORIZE_PATH,
    LOGOUT_PATH,
    TRANSIENT,
    AuthCentre,
    Bounds,
    Client,
    Tokens,
    UpstreamError,
    normalise_domain,
)

log = structlog.get_logger("identity.sso")
# A renewal failing for these keeps the session while its access token is still valid: the
# auth centre did not refuse anything, it (or identity's budget for it) was just unavailable.
RENEWAL_RETRIES = TRANSIENT | {"busy", "unavailable"}


@dataclass(frozen=True)
class Started:
    authorize_url: str
    login_cookie: str


@dataclass(frozen=True)
class Completed:
    raw_session_id: str
    next: str


Landing = Callable[[str, str, str], Awaitable[str | None]]
"""Where a platform-initiated (Flow A) login of (app, tenant, user name) should land instead of
`IDENTITY_POST_LOGIN_URL`, or None: set by the OpenID Provider for apps that registered an
`initiate_login_uri` (OIDC Core §4)."""
WayBack = Callable[[str], str | None]
"""For a login refused on its way to `next`: where the refusal page's "return to the app" goes,
or None: set by the OpenID Provider for the logins its authorization endpoint starts."""


class Sso:
    def __init__(self, settings: Settings, db: Database, cipher: Cipher, metrics: Metrics):
        assert settings.secret_key is not None
        master = settings.secret_key.get_secret_value()
        self.db, self.cipher, self.metrics = db, cipher, metrics
        self.base_url = settings.base_url.rstrip("/")
        self.post_login_url = settings.post_login_url
        self.auth_centre = AuthCentre(
            Bounds(
                deadline=settings.upstream_timeout_seconds,
                per_origin=settings.upstream_calls_per_auth_centre,
                breaker_failures=settings.upstream_breaker_failures,
                breaker_cooldown=settings.upstream_breaker_cooldown_seconds,
                max_response_bytes=settings.upstream_max_response_bytes,
            )
        )
        self.per_address = Buckets(settings.sso_logins_per_minute_per_address)
        self.per_tenant = Buckets(settings.sso_logins_per_minute_per_tenant)
        self.cookies = Cookies.for_service(self.base_url, settings.session_cookie_secure)
        self.state_mac = Mac(master, "sso-state")
        self.csrf_mac = Mac(master, "sso-csrf")
        self.pending_seal = PendingSeal(master)
        # The confirmation form carries the upstream tokens, at most one auth-centre answer.
        self.switch_form_bytes = 2 * settings.upstream_max_response_bytes + 8192
        self.policy = Policy(
            idle=timedelta(seconds=settings.session_idle_seconds),
            absolute=timedelta(seconds=settings.session_absolute_seconds),
            renew_margin=timedelta(seconds=settings.token_renew_margin_seconds),
            renewal_lease=timedelta(
                seconds=max(
                    settings.token_renew_retry_seconds, settings.upstream_timeout_seconds + 1
                )
            ),
        )
        self.allowed_origins = {origin(self.base_url)} | {
            origin(o) for o in settings.allowed_redirect_origins
        }
        self.landing: Landing | None = None
        self.way_back: WayBack | None = None

    def callback_url(self, app_id: str) -> str:
        return f"{self.base_url}/sso/callback/{app_id}"

    def checked_redirect(self, target: str | None, default: str) -> str:
        if not target:
            return default
        if not allowed(target, self.allowed_origins):
            raise Refusal("redirect_not_allowed", f"target origin {origin(target)!r}")
        return target

    def csrf_token(self, raw_session_id: str) -> str:
        """Logout's CSRF token: a MAC of the session, so it needs no storage."""
        return self.csrf_mac.sign(sessions.hash_id(raw_session_id))

    def csrf_ok(self, raw_session_id: str, token: str) -> bool:
        return self.csrf_mac.verify(sessions.hash_id(raw_session_id), token)

    def throttle(self, address: str | None) -> None:
        """Count a login or callback against its client address's rate limit."""
        _take(self.per_address, address_key(address), "client address")

    async def begin(self, tenant_ref: str, app_id: str | None, next_: str | None) -> Started:
        """Flow B (§5.3): the authorize URL at the tenant's auth centre, and the state cookie."""
        target = self.checked_redirect(next_, self.post_login_url)
        try:
            async with self.db.single_read() as conn:
                tenant_id = await admission.find_tenant(conn, tenant_ref)
                app_id = app_id or await admission.only_app(conn, tenant_id)
                client = await admission.tenant_client(conn, self.cipher, tenant_id, app_id)
        except Refusal as refusal:
            refusal.next = target  # where the login was going: the page's way back (`way_back`)
            raise
        state = secrets.token_hex(16)  # §5.3: alphanumeric
        expires = int(time.time()) + LOGIN_TTL_SECONDS
        cookie = seal(self.state_mac, LoginState(state, tenant_id, app_id, target, expires))
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client.client_id,
                "redirect_uri": self.callback_url(app_id),
                "scope": "get_user_info",
                "state": state,
            }
        )
        return Started(f"{client.domain}{AUTHORIZE_PATH}?{query}", cookie)

    async def complete(
        self,
        app_id: str,
        *,
        code: str | None,
        tenant: str | None,
        state: str | None,
        login_cookie: str | None,
        old_raw_session_id: str | None,
    ) -> Completed | Asked:
        """The callback (§5.2 steps 4-7). Flow A has no `state`; Flow B's must match the cookie.
        A Flow A login that would replace another member's session is `Asked` first
        (`switching`).

        Once the state matched, this callback ends the Flow B login whatever happens next
        (`ends_login`), except for a rate limit: that callback was not handled and may be
        retried. A refusal before that leaves the login cookie alone, or anyone could lift
        Flow B's protection by having a victim's browser open a stateless callback once."""
        tenant_id, target = self._callback_tenant(app_id, tenant, state, login_cookie)
        try:
            tokens, info = await self._verified(app_id, tenant_id, code)
            if state is None:
                pending = pending_login(tenant_id, app_id, tokens, info, target)
                if asked := await switching.ask_first(self, old_raw_session_id, pending):
                    return asked
            raw_id = await self.open_verified(app_id, tenant_id, tokens, info, old_raw_session_id)
        except Refusal as refusal:
            refusal.ends_login = state is not None and refusal.code != "rate_limited"
            refusal.tenant_id, refusal.app_id = tenant_id, app_id
            refusal.next = target if state is not None else None
            raise
        if state is None:
            return await self.landed(raw_id, app_id, tenant_id, info["userName"], target)
        return Completed(raw_id, target)

    async def _verified(
        self, app_id: str, tenant_id: str, code: str | None
    ) -> tuple[Tokens, dict[str, Any]]:
        """The code exchanged and userinfo read (§5.2 steps 4-6), for this tenant only."""
        if not code:
            raise Refusal("bad_request", "callback without code")
        async with self.db.single_read() as conn:
            client = await admission.tenant_client(conn, self.cipher, tenant_id, app_id)
        _take(self.per_tenant, tenant_id, "tenant")
        tokens, info = await self._exchange(client, code, app_id)
        if info.get("tenant") != tenant_id:
            raise Refusal("tenant_mismatch", "userinfo tenant differs from the callback's")
        return tokens, info

    async def open_verified(
        self,
        app_id: str,
        tenant_id: str,
        tokens: Tokens,
        info: dict[str, Any],
        old_raw_session_id: str | None,
        *,
        asked_in: str | None = None,
    ) -> str:
        """§5.2 step 7: admit the member and open (or join) their session; the raw cookie id.
        `asked_in`: the hash of the session a Flow A confirmation was asked in, which must
        still be there and ends now (`switching`)."""
        user_name = info["userName"]
        async with self.db.write() as conn:
            await admission.admit(conn, self.cipher, tenant_id, app_id, user_name)
            if asked_in and not await switching.end_asked_session(conn, asked_in):
                raise Refusal("switch_unconfirmed", "the session asked has ended")
            raw_id, sid = await self._session_for(conn, old_raw_session_id, tenant_id, user_name)
            await sessions.add_app(
                conn, self.cipher, sid=sid, app_id=app_id, tokens=tokens, now=utcnow()
            )
        await self._record_login(tenant_id, info)
        log.info("sso.login", tenant_id=tenant_id, app_id=app_id, user_name=user_name)
        self.metrics.sso_logins.labels("success").inc()
        return raw_id

    async def landed(
        self, raw_id: str, app_id: str, tenant_id: str, user_name: str, target: str
    ) -> Completed:
        """Where a platform-initiated (Flow A) login lands: the app's own, else `target`."""
        landing = await self.landing(app_id, tenant_id, user_name) if self.landing else None
        return Completed(raw_id, landing or target)

    async def _session_for(
        self, conn: AsyncConnection, old_raw_id: str | None, tenant_id: str, user_name: str
    ) -> tuple[str, str]:
        """The browser's session for this member, as (new cookie id, sid): the one it has when
        it belongs to the same member of the same tenant (a second app joins it, the first
        stays signed in), under a new cookie id; else a new one, and the browser's previous
        session, someone else's, ends."""
        if old_raw_id:
            old_hash = sessions.hash_id(old_raw_id)
            held = await sessions.owner(conn, old_hash)
            if held is not None and (held.tenant_id, held.user_name) == (tenant_id, user_name):
                return await sessions.rotate(conn, old_hash, utcnow()), held.sid
            if held is not None:
                await sessions.end(conn, old_hash)
        return await sessions.create(
            conn, self.policy, tenant_id=tenant_id, user_name=user_name, now=utcnow()
        )

    def _callback_tenant(
        self, app_id: str, tenant: str | None, state: str | None, cookie: str | None
    ) -> tuple[str, str]:
        login = unseal(self.state_mac, cookie)
        if state is None:
            # Flow A has no state (§5.2 step 3). A browser in the middle of a Flow B login must
            # not be switched to another account by a callback whose state was stripped.
            if login is not None:
                raise Refusal("state_mismatch", "callback without state during a Flow B login")
            if not tenant:
                raise Refusal("bad_request", "callback without tenant or state")
            return tenant, self.post_login_url
        if login is None or not secrets.compare_digest(login.state.encode(), state.encode()):
            raise Refusal("state_mismatch", "no login cookie" if login is None else "state differs")
        if login.app_id != app_id or (tenant and tenant != login.tenant_id):
            raise Refusal("state_mismatch", "app or tenant differs from the login's")
        return login.tenant_id, login.next

    async def open_session(
        self,
        tenant_id: str,
        app_id: str,
        user_name: str,
        old_raw_session_id: str | None,
        also: Callable[[AsyncConnection], Awaitable[bool]],
    ) -> str:
        """A session for a member who proved who they are some other way than the marketplace
        (a local password): the same admission under the same locks as a marketplace login,
        plus `also` (False refuses); the same kind of session, without upstream tokens.
        Returns the raw session id for the cookie."""
        async with self.db.write() as conn:
            await admission.admit(conn, self.cipher, tenant_id, app_id, user_name)
            if not await also(conn):
                raise Refusal("code_invalid", "the local password changed meanwhile")
            raw_id, sid = await self._session_for(conn, old_raw_session_id, tenant_id, user_name)
            await sessions.add_app(
                conn, self.cipher, sid=sid, app_id=app_id, tokens=None, now=utcnow()
            )
        await self._record_login(tenant_id, {"userName": user_name})
        log.info("sso.local_login", tenant_id=tenant_id, app_id=app_id, user_name=user_name)
        return raw_id

    async def _record_login(self, tenant_id: str, info: dict[str, Any]) -> None:
        """When the member last signed in (the admin console shows it), and the IdP's user id
        the first time it is seen (§3.3, §5.2 step 7).

        A transaction of its own, after the login's: updating the row inside it would need an
        exclusive lock on a row that concurrent logins of the same member hold shared, and they
        would deadlock. Both are informational; if this fails, the next login records them."""
        values: dict[str, Any] = {"last_login_at": utcnow()}
        seen_id = info.get("id") or info.get("userId")
        if isinstance(seen_id, str) and seen_id:
            values["huawei_user_id"] = func.coalesce(Member.huawei_user_id, seen_id[:128])
        async with self.db.write() as conn:
            await conn.execute(
                update(Member)
                .where(Member.tenant_id == tenant_id, Member.user_name == info["userName"])
                .values(values)
            )

    async def _exchange(self, client: Client, code: str, app_id: str) -> tuple[Tokens, Any]:
        call = "token"
        try:
            tokens = await self.auth_centre.exchange_code(client, code, self.callback_url(app_id))
            call = "userinfo"
            info = await self.auth_centre.userinfo(client.domain, tokens.access_token)
        except UpstreamError as exc:
            self.metrics.sso_upstream_errors.labels(call, exc.kind).inc()
            reason = UPSTREAM_REASONS.get(exc.kind, "upstream_error")
            detail = f"{call}: {exc.kind} {exc.detail}".strip()
            raise Refusal(reason, detail, exc.retry_after) from exc
        return tokens, info

    async def current(
        self, raw_session_id: str | None, app_id: str | None = None
    ) -> SignedIn | None:
        """The signed-in member as `app_id` sees the session (the app signed in to last when
        None), or None. Ends expired sessions; renews the app's tokens near expiry."""
        if not raw_session_id:
            return None
        id_hash, now = sessions.hash_id(raw_session_id), utcnow()
        async with self.db.single_read() as conn:
            signed_in = await sessions.load(conn, id_hash, app_id)
        if signed_in is None or sessions.expires_at(signed_in, self.policy) <= now:
            if signed_in is not None:
                await self._end(id_hash)
            return None
        token_expiry = signed_in.token_expires_at
        if token_expiry is not None and token_expiry - now <= self.policy.renew_margin:
            return await self._renew(signed_in)
        if now - signed_in.last_seen_at >= self.policy.touch_every:
            async with self.db.write() as conn:
                await sessions.touch(conn, id_hash, now)
        return signed_in

    async def _renew(self, signed_in: SignedIn) -> SignedIn | None:
        """§5.2 step 8: refresh the upstream token, one request at a time (a lease).

        A refused renewal (`invalid_grant`, the tenant or credential gone) ends the app's part of
        the session (and the session with its last app). A
        transient failure (timeout, unreachable, 5xx) keeps it while the current access token
        is still valid, and the lease makes the next attempt wait `renewal_lease`; once the
        token has expired, a failure ends the session."""
        now = utcnow()
        if signed_in.renewing_until is not None and signed_in.renewing_until > now:
            return signed_in  # another request is renewing, or a failure is backing off
        async with self.db.write() as conn:
            if not await sessions.claim_renewal(conn, signed_in, now, self.policy):
                return signed_in
        try:
            async with self.db.single_read() as conn:
                client = await admission.tenant_client(
                    conn, self.cipher, signed_in.tenant_id, signed_in.app_id
                )
            refresh_token = sessions.decrypt_refresh_token(self.cipher, signed_in)
            if refresh_token is None:
                raise UpstreamError("invalid_grant", "no refresh token was issued")
            tokens = await self.auth_centre.refresh(client, refresh_token)
        except (Refusal, UpstreamError) as exc:
            kind = exc.kind if isinstance(exc, UpstreamError) else exc.code
            self.metrics.sso_renewals.labels(kind).inc()
            log.warning("sso.renewal_failed", tenant_id=signed_in.tenant_id, reason=kind)
            expiry = signed_in.token_expires_at
            if kind in RENEWAL_RETRIES and expiry is not None and expiry > utcnow():
                return signed_in
            async with self.db.write() as conn:
                held = await sessions.load(conn, signed_in.id_hash, signed_in.app_id)
                if held is not None and held.refresh_token_enc != signed_in.refresh_token_enc:
                    # Another request renewed meanwhile (its lease ran out while the auth centre
                    # was slow) and spent the refresh token this one used: not a refusal.
                    return held
                await sessions.end_app(conn, signed_in.sid, signed_in.app_id)
            return None
        async with self.db.write() as conn:
            await sessions.store_renewed(conn, self.cipher, signed_in, tokens, utcnow())
            renewed = await sessions.load(conn, signed_in.id_hash, signed_in.app_id)
        self.metrics.sso_renewals.labels("success").inc()
        return renewed

    async def _end(self, id_hash: str) -> None:
        async with self.db.write() as conn:
            await sessions.end(conn, id_hash)

    async def logout(self, raw_session_id: str | None, csrf: str, redirect_url: str | None) -> str:
        """§5.2 step 9: end our session, then send the browser to the auth centre's logout.

        The CSRF token is required only when there is a session to end: a stale cookie is
        simply signed out. The auth centre's logout is used even when the member has lost
        access meanwhile, so its own SSO session ends too."""
        back = self.checked_redirect(redirect_url, f"{self.base_url}/sso/logged-out")
        # The auth centre redirects to it, so a relative path must name this service's host.
        back = urljoin(self.base_url, back)
        if not raw_session_id:
            return back
        id_hash = sessions.hash_id(raw_session_id)
        async with self.db.write() as conn:
            row = (await conn.execute(_LOGOUT, {"id_hash": id_hash})).one_or_none()
            if row is None:
                return back
            if not self.csrf_ok(raw_session_id, csrf):
                raise Refusal("csrf_failed", "csrf token missing or wrong")
            await sessions.end(conn, id_hash)
        tenant_id, user_name, domain_name = row
        log.info("sso.logout", tenant_id=tenant_id, user_name=user_name)
        domain = normalise_domain(domain_name)
        return f"{domain}{LOGOUT_PATH}?{urlencode({'redirect_url': back})}"

    async def switch_account(self, tenant_ref: str, app_id: str | None, next_: str | None) -> str:
        """Sign in as someone else: the auth centre's logout first (it would sign the account it
        remembers in again), then back to Flow B for the same enterprise and app."""
        self.checked_redirect(next_, self.post_login_url)
        query = {"app": app_id or "", "next": next_ or ""}
        async with self.db.single_read() as conn:
            tenant_id = await admission.find_tenant(conn, tenant_ref)
            login = "/sso/login?" + urlencode(
                {"tenant": tenant_id} | {k: v for k, v in query.items() if v}
            )
            logout = await admission.upstream_logout(conn, tenant_id, self.base_url + login)
        return logout or login

    async def ending(self, raw_session_id: str | None) -> sessions.Ending | None:
        """Why this browser's session was ended for its member, told once."""
        if not raw_session_id:
            return None
        async with self.db.write() as conn:
            return await sessions.take_ending(conn, sessions.hash_id(raw_session_id), utcnow())

    async def profile(self, signed_in: SignedIn) -> admission.Profile:
        """The member's enterprise and department by name, and whether they are its admin."""
        async with self.db.single_read() as conn:
            member = (signed_in.tenant_id, signed_in.user_name, signed_in.org_code)
            return await admission.profile(conn, *member)


_LOGOUT = (
    select(MemberSession.tenant_id, MemberSession.user_name, Tenant.domain_name)
    .join(Tenant, Tenant.tenant_id == MemberSession.tenant_id)
    .where(MemberSession.id_hash == bindparam("id_hash"))
)


def _take(buckets: Buckets, key: str, what: str) -> None:
    wait = buckets.take(key)
    if wait:
        raise Refusal("rate_limited", f"{what} over its limit", retry_after=wait)
