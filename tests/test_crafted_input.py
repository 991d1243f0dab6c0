"""Crafted values in every parameter a request carries: never a 5xx, always the surface's own
refusal. The provider's endpoints answer RFC 6749 JSON errors or the authorize error page,
`/login` its form page, the admin API `{"error", "message"}`, the console and `/sso` their pages.

identity and the simulator run as processes (tests/helpers/stack.py), on SQLite and on PostgreSQL,
which refuses a NUL in a text parameter where SQLite just finds nothing. Each test signs acme's
admin in, registers a confidential and a public client and gets real tokens, so crafted values
reach past the first check as well as into it. The strategies are in tests/helpers/crafted.py; the
explicit examples are inputs once answered with a 500 or in another surface's shape.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes

import httpx2 as httpx
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from identity.db import Database
from identity.provider import clients
from tests.helpers.admin_api import signed_in
from tests.helpers.crafted import (
    Change,
    admin_answer,
    apply,
    b64url,
    change,
    changes,
    crafted,
    encoded,
    examples,
    oauth_answer,
    page_or_redirect,
    post_form,
    seen,
    segment,
    sso_answer,
    text,
    value,
)
from tests.helpers.oidc_app import POST_LOGOUT, REDIRECT, App, pkce, register, tokens_for
from tests.helpers.simulator_world import APP_ID
from tests.helpers.stack import Browser, Stack

MEMBERS = ("alice", "bob", "carol", "dave")
HOWS = st.sampled_from(("keep", "replace", "append", "prepend"))
NUL = b"\x00"
CRIT_NULL = b64url(b'{"alg": "ES256", "crit": null}') + b".e30."
"""A JWT whose `crit` header is not a list."""


class World:
    """acme with its admin alice signed in, two clients, and a browser signed in nowhere."""

    def __init__(
        self, stack: Stack, app: App, public_client: str, alice: Browser, tokens: dict[str, str]
    ) -> None:
        self.stack, self.app, self.public_client = stack, app, public_client
        self.alice, self.tokens = alice, tokens
        self.stranger = httpx.AsyncClient(timeout=30, headers={"accept": "text/html"})
        self.form_cookie = ""
        """The name of the sign-in form's CSRF cookie, as `/login` sets it."""

    def __repr__(self) -> str:  # what a failing example prints: not the tokens
        return "World(acme, alice signed in)"

    def url(self, path: str, query: str = "") -> str:
        return self.stack.identity + path + (f"?{query}" if query else "")

    async def csrf(self) -> str:
        return str((await self.alice.session()).json()["csrfToken"])

    def anonymous(self) -> httpx.AsyncClient:
        self.stranger.cookies.clear()
        return self.stranger


@pytest.fixture
async def world(acme: Stack, db: Database) -> AsyncIterator[World]:
    public = clients.Registration(APP_ID, "Public app", [REDIRECT], [], None, None, public=True)
    async with db.transaction() as session:
        added = await clients.add(session, public)
        public_id = added.client_id
    async with httpx.AsyncClient(timeout=30) as http:
        app = await register(acme, db, http, post_logout_redirect_uris=[POST_LOGOUT])
        alice = await signed_in(acme, acme.browser(), "alice@acme", "alice-pw")
        world = World(acme, app, public_id, alice, await tokens_for(app, alice))
        form = await world.anonymous().get(world.url("/login"))
        world.form_cookie = form.headers["set-cookie"].partition("=")[0]
        try:
            yield world
        finally:
            await alice.close()
            await world.stranger.aclose()


def changed(base: str, how: str, octets: bytes) -> bytes:
    """`base` kept, replaced by the octets, or with them appended or prepended."""
    kept = base.encode()
    return {"keep": kept, "replace": octets, "append": kept + octets}.get(how, octets + kept)


# --- the OpenID Provider -------------------------------------------------------------------

AUTHORIZE = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
             "code_challenge", "code_challenge_method", "prompt", "max_age", "tenant",
             "login_hint", "id_token_hint", "response_mode", "ui_locales", "claims",
             "request")  # fmt: skip


@examples(100)
@given(made_=changes(*AUTHORIZE), signed=st.booleans(), hinted=st.booleans())
@example(made_=change("max_age", "²"), signed=False, hinted=False)
@example(made_=change("max_age", "99999999999999"), signed=True, hinted=False)
@example(made_=change("max_age", "9" * 5000), signed=False, hinted=False)
@example(made_=change("id_token_hint", CRIT_NULL), signed=True, hinted=False)
async def test_authorize(world: World, made_: list[Change], signed: bool, hinted: bool) -> None:
    """With alice signed in and without: a code, a login, an error redirect or the error
    page."""
    base = {"response_type": "code", "client_id": world.app.client_id, "redirect_uri": REDIRECT,
            "scope": "openid profile", "state": "s", "nonce": "n", "code_challenge": pkce()[1],
            "code_challenge_method": "S256", "tenant": "acme"}  # fmt: skip
    if hinted:
        base["id_token_hint"] = world.tokens["id_token"]
    http = world.alice.http if signed else world.anonymous()
    query = encoded(apply(base, made_))
    page_or_redirect(await http.get(world.url("/oauth2/authorize", query)))


OAUTH_FORM = ("grant_type", "code", "redirect_uri", "code_verifier", "refresh_token",
              "client_id", "client_secret", "token", "token_type_hint", "scope")  # fmt: skip
Basic = tuple[str, bytes, str, bytes, bool]
"""How the client id and the secret change, and whether each is form-encoded first."""
NUL_ID: Basic = ("replace", b"a\x00b", "keep", b"", False)


@dataclass(frozen=True)
class Call:
    """A request to the token, introspection, revocation or userinfo endpoint."""

    endpoint: str = "token"
    made: list[Change] = field(default_factory=list)
    basic: Basic | None = None
    header: str | None = None
    """An Authorization header as typed, instead of the Basic credentials."""
    public: bool = False
    """Without Basic: the public client's id in the form, else the confidential client's."""
    token: str = "access_token"
    raw: bool = False


calls = st.builds(
    Call,
    endpoint=st.sampled_from(["token", "introspect", "revoke", "userinfo"]),
    made=changes(*OAUTH_FORM),
    basic=st.none() | st.tuples(HOWS, crafted, HOWS, crafted, st.booleans()),
    header=st.none()
    | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)).map(str.strip),
    public=st.booleans(),
    token=st.sampled_from(["access_token", "refresh_token"]),
    raw=st.booleans(),
)


def authorization(world: World, call: Call) -> dict[str, str]:
    if call.header is not None:
        return {"authorization": call.header}
    if call.basic is None:
        return {}
    app, basic = world.app, call.basic
    client_id, secret = changed(app.client_id, *basic[:2]), changed(app.secret, *basic[2:4])
    if basic[4]:
        client_id, secret = (
            quote_from_bytes(part, safe="").encode() for part in (client_id, secret)
        )
    return {"authorization": "Basic " + base64.b64encode(client_id + b":" + secret).decode()}


@examples(100)
@given(call=calls)
@example(call=Call("token", basic=NUL_ID))
@example(call=Call("revoke", basic=NUL_ID))
@example(call=Call("introspect", basic=NUL_ID))
@example(call=Call("token", basic=("replace", b"a%00b", "keep", b"", True)))
@example(call=Call("introspect", made=change("token", CRIT_NULL)))
@example(call=Call("userinfo", made=change("token", CRIT_NULL)))
async def test_token_introspection_revocation_and_userinfo(world: World, call: Call) -> None:
    """Form fields and client credentials (RFC 6749 §2.3.1: HTTP Basic, each part form-encoded
    or not, or the form): JSON errors, or an answer."""
    app = world.app
    base = {"grant_type": "authorization_code", "code": "no-such-code",
            "redirect_uri": REDIRECT, "code_verifier": "v" * 43,
            "token": world.tokens[call.token], "token_type_hint": "access_token"}  # fmt: skip
    if call.basic is None:
        base["client_id"] = world.public_client if call.public else app.client_id
        if not call.public:
            base["client_secret"] = app.secret
    pairs = apply(base, call.made)
    sent = authorization(world, call)
    if call.endpoint == "userinfo":
        bearer = quote_from_bytes(value(pairs, "token"), safe=".-_~+/=")
        sent.setdefault("authorization", f"Bearer {bearer}".strip())
        answer = await world.anonymous().get(world.url("/oauth2/userinfo"), headers=sent)
    else:
        url = world.url(f"/oauth2/{call.endpoint}")
        answer = await post_form(world.anonymous(), url, pairs, call.raw, **sent)
    oauth_answer(answer)


LOGOUT = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id", "ui_locales")


@examples(50)
@given(made_=changes(*LOGOUT), post=st.booleans())
@example(made_=change("id_token_hint", CRIT_NULL), post=False)
async def test_end_session(world: World, made_: list[Change], post: bool) -> None:
    """Back to the app, to the sign-out page, or the error page (a POST may be refused 405)."""
    base = {"id_token_hint": world.tokens["id_token"], "post_logout_redirect_uri": POST_LOGOUT,
            "state": "s", "client_id": world.app.client_id}  # fmt: skip
    pairs = apply(base, made_)
    if post:
        answer = await post_form(world.anonymous(), world.url("/oauth2/logout"), pairs)
        if answer.status_code == 405:
            return
    else:
        answer = await world.anonymous().get(world.url("/oauth2/logout", encoded(pairs)))
    page_or_redirect(answer)


# --- local sign-in -------------------------------------------------------------------------

LOGIN = ("account", "password", "csrf", "app", "next", "current", "new", "again", "expires",
         "set_at", "tenant", "user", "proof")  # fmt: skip
CSRF = "crafted-form-token-0123456789"


@examples(50)
@given(
    form=st.sampled_from(["/login", "/login/change", "/login/app", "GET /login"]),
    made_=changes(*LOGIN),
    raw=st.booleans(),
)
@example(form="/login", made_=change("account", "bob\x00@acme"), raw=False)
@example(form="/login/change", made_=change("account", "bob@ac\x00me"), raw=False)
@example(form="/login/app", made_=change("expires", "²"), raw=False)
@example(form="/login/app", made_=change("expires", "9" * 5000), raw=False)
async def test_local_sign_in(world: World, form: str, made_: list[Change], raw: bool) -> None:
    """`/login`, the forced change and the app pick, with the form's CSRF value matching its
    cookie unless a change breaks it: the sign-in page again, saying no."""
    later = str(int(time.time()) + 120)
    base = {
        "/login": {"account": "bob@acme", "password": "Wrong-pw-1"},
        "/login/change": {"account": "bob@acme", "current": "Wrong-pw-1",
                          "new": "Kiwi-Orchard-2026", "again": "Kiwi-Orchard-2026"},
        "/login/app": {"tenant": "t-acme-0001", "user": "bob", "app": APP_ID, "expires": later,
                       "set_at": "2026-01-01T00:00:00", "proof": "x" * 43},
        "GET /login": {"app": APP_ID},
    }[form] | {"csrf": CSRF, "next": "/sso/me"}  # fmt: skip
    pairs = apply(base, made_)
    cookie = f"{world.form_cookie}={CSRF}"
    http = world.anonymous()
    if form.startswith("GET "):
        answer = await http.get(world.url("/login", encoded(pairs)), headers={"cookie": cookie})
    else:
        answer = await post_form(http, world.url(form), pairs, raw, cookie=cookie)
    page_or_redirect(answer)
    assert not 300 <= answer.status_code < 400, seen(answer)  # nobody here has a password


# --- the admin API and console -------------------------------------------------------------

ADMIN_QUERY = ("q", "org_code", "state", "limit", "cursor", "tenant", "tenant_id", "tenantId",
               "tenant_code", "tenantCode", "code", "ended", "wait", "reset", "target", "csrf",
               "sent_to")  # fmt: skip


def someone_else(name: bytes) -> bool:
    """A path segment naming none of acme's members (a write must change nothing)."""
    return not any(member.encode() in name.lower() for member in MEMBERS)


@examples(80)
@given(
    route=st.sampled_from(
        ["members", "member", "end-sessions", "password-resets", "confirm", "syncs", "departments"]
    ),
    made_=changes(*ADMIN_QUERY),
    how=HOWS,
    octets=crafted,
)
@example(route="syncs", made_=change("cursor", b64url("²".encode())), how="keep", octets=b"")
@example(route="syncs", made_=change("cursor", b64url(b"9" * 30)), how="keep", octets=b"")
@example(route="members", made_=change("q", NUL), how="keep", octets=b"")
@example(route="members", made_=change("org_code", NUL), how="keep", octets=b"")
@example(route="members", made_=change("cursor", b64url(NUL)), how="keep", octets=b"")
@example(route="member", made_=[], how="append", octets=NUL)
@example(route="end-sessions", made_=[], how="replace", octets=b"x\x00")
@example(route="confirm", made_=[], how="replace", octets=b"x\x00")
async def test_admin_api(
    world: World, route: str, made_: list[Change], how: str, octets: bytes
) -> None:
    """alice, acme's admin, asks with crafted queries, names and ids: JSON answers."""
    base_name = "bob" if route == "member" else "nobody"
    name = changed(base_name, how, octets)
    pairs = apply({}, made_)
    path = {
        "members": "/members",
        "member": f"/members/{segment(name)}",
        "end-sessions": f"/members/{segment(name)}/end-sessions",
        "password-resets": f"/members/{segment(name)}/password-resets",
        "confirm": f"/password-resets/{segment(name)}/confirm",
        "syncs": "/syncs",
        "departments": "/departments",
    }[route]
    url = world.url("/api/admin" + path, encoded(pairs))
    if route in ("end-sessions", "password-resets", "confirm"):
        assume(someone_else(name))
        # json.dumps writes lone surrogates as \u escapes, which httpx's `json=` could not send
        code = json.dumps({"code": text(value(pairs, "code", b"123456"))})
        headers = {"x-csrf-token": await world.csrf(), "content-type": "application/json"}
        answer = await world.alice.http.post(url, content=code, headers=headers)
    else:
        answer = await world.alice.http.get(url)
    admin_answer(answer)


@examples(60)
@given(
    route=st.sampled_from(
        ["/admin", "member", "/admin/syncs", "/admin/departments"]
        + ["end-sessions", "password-resets", "confirm"]
    ),
    made_=changes(*ADMIN_QUERY),
    how=HOWS,
    octets=crafted,
)
@example(route="member", made_=change("wait", "999999999999"), how="keep", octets=b"")
@example(route="member", made_=change("wait", "²"), how="keep", octets=b"")
@example(route="/admin", made_=change("q", NUL), how="keep", octets=b"")
@example(route="/admin/syncs", made_=change("cursor", b64url("²".encode())), how="keep", octets=b"")
@example(route="member", made_=[], how="replace", octets=b"a\x00b")
async def test_admin_console(
    world: World, route: str, made_: list[Change], how: str, octets: bytes
) -> None:
    """The console's pages and forms: a page, a redirect, or the console's refusal page."""
    name = changed("bob" if route == "member" else "nobody", how, octets)
    seg = segment(name)
    path = {
        "member": f"/admin/members/{seg}",
        "end-sessions": f"/admin/members/{seg}/end-sessions",
        "password-resets": f"/admin/members/{seg}/password-resets",
        "confirm": f"/admin/password-resets/{seg}/confirm",
    }.get(route, route)
    if route in ("end-sessions", "password-resets", "confirm"):
        assume(someone_else(name) and someone_else(value(apply({}, made_), "target")))
        base = {"csrf": await world.csrf(), "code": "123456", "target": "nobody"}
        answer = await post_form(world.alice.http, world.url(path), apply(base, made_))
    else:
        answer = await world.alice.http.get(world.url(path, encoded(apply({}, made_))))
    page_or_redirect(answer)


# --- /sso ----------------------------------------------------------------------------------

SSO = ("tenant", "app", "next", "code", "state", "error")


@examples(50)
@given(
    route=st.sampled_from(["/sso/login", "callback", "/sso/switch"]),
    made_=changes(*SSO),
    how=HOWS,
    octets=crafted,
)
async def test_sso(world: World, route: str, made_: list[Change], how: str, octets: bytes) -> None:
    """Flow B's start and the callback (Flow A without state, B with it) from a stranger."""
    if route == "callback":
        path = f"/sso/callback/{segment(changed(APP_ID, how, octets))}"
        base = {"code": "no-such-code", "tenant": "t-acme-0001"}
    else:
        path, base = route, {"tenant": "acme", "app": APP_ID, "next": "/sso/me"}
    query = encoded(apply(base, made_))
    sso_answer(await world.anonymous().get(world.url(path, query)))
