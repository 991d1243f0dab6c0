"""The OpenID Provider's operations (OIDC Core 1.0, RFC 6749, RFC 7636, RFC 7662, RFC 7009).

Each operation owns its transactions, like `identity.sessions.service`: they are short, and the
browser's session comes from there. Tokens are JWTs signed by `identity.provider.keys` and are
active only while their grant is (`identity.provider.grants`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, timedelta
from functools import partial
from typing import Any
from urllib.parse import unquote

from sqlalchemy import Select, false, func, or_, select

from identity.access import end_grants
from identity.crypto import Cipher
from identity.db import Database, Tx, utcnow
from identity.errors import IdentityError
from identity.models import SigningKey
from identity.observability import bind
from identity.pg_cache import cacheable
from identity.provider import client_grant, clients, discovery, grants, keys, tokens
from identity.provider.client_grant import DirectoryClient, ScopeRefused
from identity.provider.grants import GrantError, Live
from identity.provider.keys import Published
from identity.provider.tokens import Issue, Member, Subjects
from identity.sessions import Sessions, SignedIn
from identity.settings import Settings
from identity.web import holds_control

KEYS_REFRESH_SECONDS = 30
ALGORITHMS = list(keys.ALGORITHMS)
SCOPES = (*client_grant.MEMBER_SCOPES, *clients.EXTRA_SCOPES)
"""Refused in every parameter and credential before any use: PostgreSQL cannot store or
compare a NUL, and no legitimate value holds a control character."""


def parameters(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Each parameter's value, and the names sent more than once. A parameter must not be
    repeated (RFC 6749 §3.1, §3.2): the caller refuses the request rather than pick a value,
    since the app and identity could each read a different one."""
    values: dict[str, str] = {}
    repeated: list[str] = []
    for name, value in pairs:
        if name in values and name not in repeated:
            repeated.append(name)
        values.setdefault(name, value)
    return values, repeated


class OAuthError(IdentityError):
    """An error of the token, userinfo, introspection and revocation endpoints, answered as
    RFC 6749 §5.2 says: `{"error": …, "error_description": …}` (`code` is the `error`)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code = self.error = error
        self.description, self.status = description, status


class Provider:
    """The OpenID Provider for the ISV's apps: authenticates clients, turns a member's session
    into codes and tokens, answers introspection, userinfo and revocation, and publishes its
    keys. A token is active only while its grant, its session and the member's right to use
    the app all hold; the browser's session is `sessions`'s."""

    def __init__(
        self, settings: Settings, db: Database, cipher: Cipher, sessions: Sessions
    ) -> None:
        assert settings.secret_key is not None
        self.db, self.cipher, self.sessions = db, cipher, sessions
        self.issuer = settings.base_url.rstrip("/")
        self.lifetime = settings.access_token_seconds
        self.subjects = Subjects(settings.secret_key.get_secret_value())
        self._published: Published | None = None
        self._reading = asyncio.Lock()
        self._in_force_at = self._read = float("-inf")  # time.monotonic() of the last check, read
        self.discovery_json = json.dumps(self.discovery(), separators=(",", ":")).encode()

    # --- keys ---------------------------------------------------------------------------

    async def keys(self, *, reread: bool = False) -> Published:
        """The keys, read again every `KEYS_REFRESH_SECONDS`, so rotations reach every
        replica (a `next` key is published a while before it signs). What signs, publishes or
        trusts them as a set uses `keys_in_force`."""
        now = utcnow()
        current = self._published
        fresh = current is not None and now - current.read_at < timedelta(
            seconds=KEYS_REFRESH_SECONDS
        )
        if current is not None and fresh and not reread:
            return current
        async with self._reading:
            if self._published is not current:
                return self._published  # type: ignore[return-value]
            lifetime = timedelta(seconds=self.lifetime)
            async with self.db.transaction() as session:
                await keys.ensure(session, self.cipher, now, lifetime)
                rows = await keys.rows(session)
            self._published = keys.load(rows, self.cipher, now, lifetime)
            self._read = time.monotonic()
            return self._published

    async def keys_in_force(self, *, checked_within: float = 0.0) -> Published:
        """The keys, none of them revoked since this replica read them: one query. `identity
        keys revoke` runs in a process of its own, so every replica learns of a revocation
        here, at its next signature or `id_token_hint`, not at its next refresh. The JWKS,
        which anyone may ask for as often as they like, passes `checked_within=1`: a check
        less than a second old stands, so a flood of JWKS requests costs no query each.
        (Access tokens are checked key by key with their grant, `grants.live`.)"""
        at_hand = self.keys_at_hand(checked_within)
        if at_hand is not None:
            return at_hand
        published = await self.keys()
        started = time.monotonic()
        row = await self.db.read_one(_in_force(tuple(published.kids)))
        if row is None or row.count != len(published.kids):
            published = await self.keys(reread=True)
        self._in_force_at = started
        return published

    def keys_at_hand(self, checked_within: float) -> Published | None:
        """The keys when `keys_in_force(checked_within=…)` has them without a query or a
        read: read less than `KEYS_REFRESH_SECONDS` ago, checked less than `checked_within`
        seconds ago. Else None."""
        now = time.monotonic()
        if now - self._in_force_at >= checked_within or now - self._read >= KEYS_REFRESH_SECONDS:
            return None
        return self._published

    def discovery(self) -> dict[str, Any]:
        return discovery.document(self.issuer, ALGORITHMS, SCOPES)

    # --- token --------------------------------------------------------------------------

    async def authenticate(
        self, form: dict[str, str], authorization: str | None
    ) -> clients.Credentials:
        """client_secret_basic, client_secret_post, or none for a public client."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization[:6].lower() == "basic ":
            client_id, secret = _basic_credentials(authorization, form)
        client = (
            await clients.credentials(self.db, client_id)
            if client_id and len(client_id) <= 64
            else None
        )
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        bind(client_id=client.client_id)
        if client.public:
            if secret:
                raise OAuthError("invalid_client", "a public client has no secret", 401)
        elif not secret or not clients.secret_matches(client, secret):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    async def token(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        client = await self.authenticate(form, authorization)
        now = utcnow()
        spend: Callable[[Tx], str]
        if grant_type == "authorization_code":
            spend = partial(
                grants.redeem_code,
                code=form.get("code", ""),
                client_id=client.client_id,
                redirect_uri=form.get("redirect_uri"),
                verifier=form.get("code_verifier"),
                now=now,
            )
        elif grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            spend = partial(grants.rotate_refresh, token=token, client_id=client.client_id, now=now)
        elif grant_type == "client_credentials":
            return await self._client_token(client, form.get("scope"))
        else:
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r}")
        policy = self.sessions.policy
        outcome: tuple[Live, str] | GrantError | None = grants.NOT_SPENT
        if grant_type == "refresh_token" and self.db.writes_with_ctes:
            outcome = await grants.refresh_at_once(
                self.db, token=token, client_id=client.client_id, policy=policy, now=now
            )
        if outcome is grants.NOT_SPENT:  # a code, or a refresh token to spend or explain
            outcome = await self.db.run_write(  # each statement waits for its answer
                partial(grants.exchange, spend=spend, policy=policy, now=now), pipelined=False
            )
        if isinstance(outcome, GrantError):  # committed: a reused code or token stays revoked
            raise OAuthError("invalid_grant", str(outcome))
        if outcome is None:
            raise OAuthError("invalid_grant", "the member's session or access has ended")
        live, refresh = outcome
        _bind(live)
        return await self._tokens(live, refresh, include_nonce=grant_type != "refresh_token")

    async def _client_token(self, client: clients.Credentials, scope: str | None) -> dict[str, Any]:
        """RFC 6749 §4.4: a token for the client itself (`client_grant`)."""
        if client.public:
            raise OAuthError("unauthorized_client", "a public client has no credentials to use")
        try:
            granted = await client_grant.granted(self.db, client.client_id, scope)
        except ScopeRefused as exc:
            raise OAuthError(exc.error, str(exc)) from None
        published = await self.keys_in_force()
        return client_grant.response(published, self.issuer, client, granted, self.lifetime)

    async def directory_claims(self, token: str) -> dict[str, Any] | None:
        """A live directory token's claims (`client_grant`), else None."""
        claims = client_grant.claims_of(await self.keys(), self.issuer, token)
        if claims is None or await client_grant.live(self.db, claims) is None:
            return None
        return claims

    async def directory_client(self, authorization: str | None) -> DirectoryClient | None:
        """The app's backend a bearer directory token speaks for, while the token is live."""
        bearer = authorization or ""
        token = bearer[7:] if bearer[:7].lower() == "bearer " else ""
        claims = client_grant.claims_of(await self.keys(), self.issuer, token) if token else None
        found = await client_grant.live(self.db, claims) if claims else None
        if found is not None:
            bind(client_id=found.client_id, app_id=found.app_id)
        return found

    def member(self, signed_in: SignedIn) -> Member:
        return Member(
            sub=self.subjects.sub(signed_in.tenant_id, signed_in.user_name),
            sid=signed_in.sid,
            tenant_id=signed_in.tenant_id,
            tenant_code=signed_in.tenant_code,
            user_name=signed_in.user_name,
            name=signed_in.name,
            role=signed_in.role,
            org_code=signed_in.org_code,
            email=signed_in.email,
            auth_time=int(signed_in.authenticated_at.replace(tzinfo=UTC).timestamp()),
        )

    async def _tokens(self, live: Live, refresh: str, *, include_nonce: bool) -> dict[str, Any]:
        published = await self.keys_in_force()  # never sign with a key revoked meanwhile
        issue = Issue(
            issuer=self.issuer,
            client_id=live.client_id,
            grant_id=live.grant_id,
            scope=live.scope,
            lifetime=self.lifetime,
            nonce=live.nonce if include_nonce else None,
        )
        member = self.member(live.signed_in)
        return {
            "access_token": tokens.access_token(published, issue, member),
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "id_token": tokens.id_token(published, issue, member),
            "refresh_token": refresh,
            "scope": live.scope,
        }

    # --- using tokens -------------------------------------------------------------------

    async def access_claims(self, token: str) -> tuple[dict[str, Any], Live] | None:
        """A JWT access token of ours, signed by a key still in force, unexpired, whose grant is
        live; else None. One query."""
        decoded = keys.verified(await self.keys(), token)
        if decoded is None:
            return None
        claims = decoded.claims
        if decoded.header.get("typ") != "at+jwt" or claims.get("iss") != self.issuer:
            return None
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
            return None
        grant_id, kid = str(claims.get("gid")), str(decoded.header.get("kid"))
        live = await grants.live_signed(self.db, grant_id, kid, self.sessions.policy, utcnow())
        if live is None or live.client_id != claims.get("client_id"):
            return None
        _bind(live)
        return claims, live

    async def userinfo(self, authorization: str | None) -> dict[str, Any]:
        token = (authorization or "")[7:] if (authorization or "")[:7].lower() == "bearer " else ""
        found = await self.access_claims(token) if token else None
        if found is None:
            raise OAuthError("invalid_token", "the access token is not active", 401)
        _, live = found
        return self.member(live.signed_in).claims(set(live.scope.split()))

    async def introspect(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        """RFC 7662. A token of another client answers inactive, as an unknown one does."""
        token = form.get("token", "")
        client = await self.authenticate(form, authorization)
        if client.public:
            raise OAuthError("invalid_client", "introspection needs a confidential client", 401)
        found = await self.access_claims(token) if token else None
        if found is not None and found[1].client_id == client.client_id:
            claims, _ = found
            keep = ("sub", "client_id", "scope", "exp", "iat", "iss", "aud", "sid", "jti")
            shown = {k: claims[k] for k in keep if k in claims}
            return {"active": True, "token_type": "access_token", **shown,
                    "username": claims.get("preferred_username")}  # fmt: skip
        directory = await self.directory_claims(token) if token and found is None else None
        if directory is not None and directory["client_id"] == client.client_id:
            return client_grant.introspected(directory)
        async with self.db.single_read() as conn:
            refresh = await grants.grant_of_refresh(conn, token) if token else None
            live = (
                await grants.live(conn, refresh[0], self.sessions.policy, utcnow())
                if refresh and not refresh[2] and refresh[1] == client.client_id
                else None
            )
        if live is None:
            return {"active": False}
        member = self.member(live.signed_in)
        return {"active": True, "token_type": "refresh_token", "client_id": live.client_id,
                "scope": live.scope, "sub": member.sub, "sid": member.sid, "iss": self.issuer,
                "username": member.user_name}  # fmt: skip

    async def revoke(self, form: dict[str, str], authorization: str | None) -> None:
        """RFC 7009: a refresh or access token revokes its grant, everything issued from it.
        An unknown token, or another client's, changes nothing and is answered the same."""
        token = form.get("token", "")
        client = await self.authenticate(form, authorization)
        found = await self.access_claims(token)
        grant_id = found[1].grant_id if found and found[1].client_id == client.client_id else None
        directory = await self.directory_claims(token) if found is None and token else None
        if directory is not None and directory["client_id"] == client.client_id:
            raise OAuthError(
                "unsupported_token_type",
                "a client-credentials token cannot be revoked alone: it ends with its lifetime, "
                "the client's secret or the client",
            )
        async with self.db.write() as conn:
            if grant_id is None and token:
                refresh = await grants.grant_of_refresh(conn, token)
                grant_id = refresh[0] if refresh and refresh[1] == client.client_id else None
            if grant_id is not None:
                await end_grants(conn, [grant_id])


def _bind(live: Live | None) -> None:
    """The member's tenant and app on the request's log lines, once a grant is found live."""
    if live is not None:
        bind(tenant_id=live.signed_in.tenant_id, app_id=live.signed_in.app_id)


def _basic_credentials(authorization: str, form: dict[str, str]) -> tuple[str, str]:
    """(client_id, secret) from `Authorization: Basic` (RFC 6749 §2.3.1), the one method of
    the request: a client_secret in the body as well, or a body client_id naming another
    client, is a second one (RFC 6749 §2.3: "MUST NOT use more than one"). A body client_id
    naming the same client only identifies it again (§3.2.1 allows it), and is accepted."""
    try:
        decoded = base64.b64decode(authorization[6:], validate=True).decode()
        client_id, _, secret = (unquote(part) for part in decoded.partition(":"))
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    if holds_control(client_id, secret):  # as the form's fields
        raise OAuthError("invalid_request", "Basic credentials hold a control character")
    if "client_secret" in form or form.get("client_id", client_id) != client_id:
        raise OAuthError("invalid_request", "use one client authentication method, not two")
    return client_id, secret


@functools.lru_cache(maxsize=4)
def _in_force(kids: tuple[str, ...]) -> Select[int]:
    """How many of these keys are still in force: neither revoked nor deleted. One statement
    per key set, its kids each a parameter of their own (no IN list: `Database.read_one`)."""
    named = or_(false(), *(SigningKey.kid == kid for kid in kids))
    counted = select(func.count().label("count")).where(named, SigningKey.revoked_at.is_(None))
    return cacheable(counted)  # kept on PostgreSQL until `signing_keys` changes
