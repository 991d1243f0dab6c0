"""Login (Flow A and B), the session on each request, token renewal and logout (contract §5).

These operations call the tenant's auth centre, and no transaction may stay open across an
outbound call (on SQLite it would hold the write lock for the length of a network round trip).
So each of them owns its transactions: read what the call needs, call out, then write in one
short transaction that checks everything again under the tenant's lock and the member's row
locks, the same locks every de-provisioning path takes. A login racing a de-provisioning sync
therefore either sees the change and is refused, or commits first and has its session ended.

The sessions themselves (opening, the cookie, CSRF, renewal's lease) are `identity.sessions`;
renewing upstream tokens is `renewal`, confirming a switch of account is `switching`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from identity.crypto import Cipher, Mac
from identity.db import Database
from identity.directory import eligibility
from identity.models import MemberSession, Tenant
from identity.observability import Metrics, bind
from identity.sessions import Seen, Sessions, Tokens, store
from identity.sessions.browser import origin
from identity.settings import Settings
from identity.sso import admission, switching
from identity.sso.limits import Buckets, address_key
from identity.sso.login_state import LOGIN_TTL_SECONDS, LoginState, seal, unseal
from identity.sso.refusals import UPSTREAM_REASONS, Refusal
from identity.sso.switching import Asked, PendingSeal, pending_login
from identity.sso.upstream import (
    AUTHORIZE_PATH,
    LOGOUT_PATH,
    AuthCentre,
    Client,
    UpstreamError,
    normalise_domain,
)

log = structlog.get_logger("identity.sso")


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
SignInLinks = Callable[[str, str, list[str]], Awaitable[list[tuple[str, str, str | None]]]]
"""For a member (tenant code, user name) and the apps they may use: each registered client of
those apps as (app id, name, where the member starts signing in to it, or None): set by the
OpenID Provider (its clients' `initiate_login_uri`)."""


@dataclass(frozen=True)
class App:
    """An app the member may use, as the signed-in page lists it: one of its registered
    clients (`name`), or the app alone when none is registered (`name` None); `sign_in_url` is
    where signing in to it starts, None when no such address is known."""

    app_id: str
    name: str | None
    sign_in_url: str | None


class Sso:
    """The marketplace sign-in (contract §5): Flow B begins here, both flows' callbacks
    complete here, and logout and "sign in as someone else" leave through the tenant's auth
    centre. The session a login opens is `sessions`'s; `landing` and `way_back` are the
    OpenID Provider's hooks, passed in by the app that wires both."""

    def __init__(
        self,
        settings: Settings,
        cipher: Cipher,
        metrics: Metrics,
        sessions: Sessions,
        auth_centre: AuthCentre,
        *,
        landing: Landing | None = None,
        way_back: WayBack | None = None,
        sign_in_links: SignInLinks | None = None,
    ) -> None:
        assert settings.secret_key is not None
        master = settings.secret_key.get_secret_value()
        self.db: Database = sessions.db
        self.cipher, self.metrics, self.sessions = cipher, metrics, sessions
        self.auth_centre = auth_centre
        self.base_url = settings.base_url.rstrip("/")
        self.post_login_url = settings.post_login_url
        self.per_address = Buckets(settings.sso_logins_per_minute_per_address)
        self.per_tenant = Buckets(settings.sso_logins_per_minute_per_tenant)
        self.state_mac = Mac(master, "sso-state")
        self.pending_seal = PendingSeal(master)
        # The confirmation form carries the upstream tokens, at most one auth-centre answer.
        self.switch_form_bytes = 2 * settings.upstream_max_response_bytes + 8192
        self.landing, self.way_back = landing, way_back
        self.sign_in_links = sign_in_links

    def callback_url(self, app_id: str) -> str:
        return f"{self.base_url}/sso/callback/{app_id}"

    def checked_redirect(self, target: str | None, default: str) -> str:
        checked = self.sessions.checked_redirect(target, default)
        if checked is None:
            raise Refusal("redirect_not_allowed", f"target origin {origin(target or '')!r}")
        return checked

    def throttle(self, address: str | None) -> None:
        """Count a login or callback against its client address's rate limit."""
        _take(self.per_address, address_key(address), "client address")

    def take_tenant_turn(self, tenant_id: str) -> None:
        """Count a callback against its enterprise's rate limit."""
        _take(self.per_tenant, tenant_id, "tenant")

    async def begin(self, tenant_ref: str, app_id: str | None, next_: str | None) -> Started:
        """Flow B (§5.3): the authorize URL at the tenant's auth centre, and the state cookie."""
        target = self.checked_redirect(next_, self.post_login_url)
        try:
            async with self.db.single_read() as conn:
                tenant_id = await admission.find_tenant(conn, tenant_ref)
                app_id = app_id or await admission.only_app(conn, tenant_id)
                bind(tenant_id=tenant_id, app_id=app_id)
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
        seen: Seen | None = None,
    ) -> Completed | Asked:
        """The callback (§5.2 steps 4-7). Flow A has no `state`; Flow B's must match the cookie.
        A Flow A login that would replace another member's session is `Asked` first
        (`switching`). `seen`: the callback's browser and address, which the session shows.

        Once the state matched, this callback ends the Flow B login whatever happens next
        (`ends_login`), except for a rate limit: that callback was not handled and may be
        retried. A refusal before that leaves the login cookie alone, or anyone could lift
        Flow B's protection by having a victim's browser open a stateless callback once."""
        tenant_id, target = self._callback_tenant(app_id, tenant, state, login_cookie)
        bind(tenant_id=tenant_id, app_id=app_id)
        try:
            tokens, info = await self._verified(app_id, tenant_id, code)
            if state is None:
                pending = pending_login(tenant_id, app_id, tokens, info, target)
                if asked := await switching.ask_first(self, old_raw_session_id, pending):
                    return asked
            raw_id = await self.open_verified(
                app_id, tenant_id, tokens, info, old_raw_session_id, seen=seen
            )
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
        client = await admission.read_client(self.db, self.cipher, tenant_id, app_id)
        self.take_tenant_turn(tenant_id)
        tokens, info = await self._exchange(client, code, app_id)
        if info.get("tenant") != tenant_id:
            raise Refusal("tenant_mismatch", "userinfo tenant differs from the callback's")
        return tokens, info

    async def open_verified(
        self,
        app_id: str,
        tenant_id: str,
        tokens: Tokens | None,
        info: dict[str, Any],
        old_raw_session_id: str | None,
        *,
        asked_in: str | None = None,
        seen: Seen | None = None,
    ) -> str:
        """§5.2 step 7: admit the member and open (or join) their session; the raw cookie id.
        `tokens`: the upstream ones, none after a CAS ticket (`identity.sso.cas`).
        `asked_in`: the hash of the session a Flow A confirmation was asked in, which must
        still be there and ends now (`switching`); `seen`: the browser and address signing in."""
        user_name = info["userName"]

        async def asked_session_ends(conn: AsyncConnection) -> None:
            assert asked_in is not None
            if not await switching.end_asked_session(conn, asked_in):
                raise Refusal("switch_unconfirmed", "the session asked has ended")

        seen_id = info.get("id") or info.get("userId")
        raw_id = await self.sessions.open(
            tenant_id,
            app_id,
            user_name,
            tokens=tokens,
            old_raw_session_id=old_raw_session_id,
            check=asked_session_ends if asked_in else None,
            user_id=seen_id if isinstance(seen_id, str) else None,
            seen=seen,
            method="marketplace",
        )
        log.info("sso.login", tenant_id=tenant_id, app_id=app_id, user_name=user_name)
        self.metrics.sso_logins.labels("success").inc()
        return raw_id

    async def landed(
        self, raw_id: str, app_id: str, tenant_id: str, user_name: str, target: str
    ) -> Completed:
        """Where a platform-initiated (Flow A) login lands: the app's own, else `target`."""
        landing = await self.landing(app_id, tenant_id, user_name) if self.landing else None
        return Completed(raw_id, landing or target)

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
        id_hash = store.hash_id(raw_session_id)
        async with self.db.write() as conn:
            row = (await conn.execute(_LOGOUT, {"id_hash": id_hash})).one_or_none()
            if row is None:
                return back
            if not self.sessions.csrf_ok(raw_session_id, csrf):
                raise Refusal("csrf_failed", "csrf token missing or wrong")
            await store.end_session(conn, id_hash)
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

    async def profile(self, signed_in: store.SignedIn) -> admission.Profile:
        """The member's enterprise and department by name, and whether they are its admin."""
        async with self.db.single_read() as conn:
            member = (signed_in.tenant_id, signed_in.user_name, signed_in.org_code)
            return await admission.profile(conn, *member)

    async def apps(self, signed_in: store.SignedIn) -> list[App]:
        """The apps the member may use now (`eligibility.usable_apps`, the one rule), each as
        its registered clients with where signing in to them starts (`sign_in_links`), or
        alone when no client of it is registered; in app id order."""
        async with self.db.single_read() as conn:
            usable = await eligibility.usable_apps(conn, signed_in.tenant_id, signed_in.user_name)
        found: list[tuple[str, str, str | None]] = []
        if self.sign_in_links is not None and usable:
            found = await self.sign_in_links(signed_in.tenant_code, signed_in.user_name, usable)
        apps: list[App] = []
        for app_id in usable:
            clients = [App(app_id, name, url) for of, name, url in found if of == app_id]
            apps.extend(clients or [App(app_id, None, None)])
        return apps


_LOGOUT = (
    select(MemberSession.tenant_id, MemberSession.user_name, Tenant.domain_name)
    .join(Tenant, Tenant.tenant_id == MemberSession.tenant_id)
    .where(MemberSession.id_hash == bindparam("id_hash"))
)


def _take(buckets: Buckets, key: str, what: str) -> None:
    wait = buckets.take(key)
    if wait:
        raise Refusal("rate_limited", f"{what} over its limit", retry_after=wait)
