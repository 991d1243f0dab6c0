"""A small ISV app that signs members in through identity, for `identity demo`.

It is what an ISV would write: an OpenID Connect client with a secret (authorization code flow
with PKCE), tokens checked with `identity.client`, the member's claims shown on its page,
sign-out through identity's end-session endpoint, and a back-channel logout receiver that ends
the app's own session when identity says the member's session ended (for instance when the
marketplace disables the member). Given its events secret, it also reads the signed-in
member's enterprise from identity's directory (SCIM, `identity.client.DirectoryReader`) and
receives its change events (`identity.client.events_router`): its People page lists the
enterprise's people and reloads when an event arrives. Its sessions live in memory: it is a
demo.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from identity.client import (
    DirectoryEvent,
    DirectoryReader,
    EventReceiver,
    TokenValidator,
    backchannel_logout_router,
    events_router,
)

COOKIE = "example_app_session"


@dataclass
class State:
    """The app's memory: sign-ins in flight, and signed-in browsers."""

    pending: dict[str, tuple[str, str]] = field(default_factory=dict)  # state -> verifier, nonce
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)  # cookie -> claims+tokens
    events: list[DirectoryEvent] = field(default_factory=list)  # the latest, newest first
    heard: int = 0  # how many events arrived


_STYLE = (
    "body{font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
    "table.claims{border-collapse:collapse;width:100%}"
    ".claims th,.claims td{text-align:left;vertical-align:top;padding:.3rem .5rem;"
    "border-bottom:1px solid #ddd}"
    ".claims td{overflow-wrap:anywhere}"  # a long value (sub, sid) wraps, never the page
    "@media (max-width:30rem){.claims tr{display:block;padding:.4rem 0;"
    "border-bottom:1px solid #ddd}.claims th,.claims td{display:block;border:0;padding:0}"
    ".claims th{font-size:.8rem;font-weight:normal;color:#555}.claims tr.head{display:none}}"
    # a phone: name above value, and no header row over rows that are blocks
)


def _page(body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>Example app</title><style>{_STYLE}</style><body>{body}</body>"
    )


def create_example_app(
    identity: str, client_id: str, client_secret: str, base: str, events_secret: str | None = None
) -> FastAPI:
    """`identity` is identity's base URL (the issuer); `base` is this app's own; with
    `events_secret`, it reads the directory and hears its changes (`people`).

    Longer than a function should be: the app's few routes are closures over its client and
    its state, kept in one function so that the whole example reads top to bottom, as an ISV
    would copy it."""
    app = FastAPI(title="identity demo: example ISV app", docs_url=None, redoc_url=None)
    state = State()
    validator = TokenValidator(identity, client_id)
    callback = f"{base}/callback"

    async def config() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            found: dict[str, Any] = (
                await http.get(f"{identity}/.well-known/openid-configuration")
            ).json()
            return found

    @app.get("/")
    async def home(request: Request) -> HTMLResponse:
        signed_in = state.sessions.get(request.cookies.get(COOKIE, ""))
        if signed_in is None:
            return _page(
                "<h1>Example app</h1><p id=signed-out>Not signed in.</p>"
                "<p><a id=login href='/login'>Sign in with identity</a></p>"
            )
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td id='claim-{html.escape(k)}'>"
            f"{html.escape(str(v))}</td></tr>"
            for k, v in signed_in["claims"].items()
        )
        return _page(
            "<h1>Example app</h1><p id=signed-in>Signed in through identity as "
            f"<b>{html.escape(str(signed_in['claims'].get('name')))}</b>.</p>"
            f"<table class=claims>{rows}</table><p><a id=logout href='/logout'>Sign out</a>"
            + (" · <a id=people-link href='/people'>People</a>" if events_secret else "")
            + "</p>"
        )

    @app.get("/login")
    async def login(login_hint: str = "") -> RedirectResponse:
        """Also the app's `initiate_login_uri` (OIDC Core §4), should it register one: the
        member's `login_hint` goes on to identity."""
        verifier, nonce, key = (secrets.token_urlsafe(48) for _ in range(3))
        state.pending[key] = (verifier, nonce)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": callback,
            "scope": "openid profile email",
            "state": key,
            "nonce": nonce,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
            **({"login_hint": login_hint} if login_hint else {}),
        }
        return RedirectResponse(f"{(await config())['authorization_endpoint']}?{urlencode(query)}")

    @app.get("/callback", response_model=None)
    async def finish(request: Request, code: str = "", error: str = "") -> Response:
        key = request.query_params.get("state", "")
        if key not in state.pending or not (code or error):
            return _page("<p>That sign-in is not one this app started.</p>")
        if error:  # the member was refused, or the request was (RFC 6749 §4.1.2.1)
            state.pending.pop(key)
            return _page(
                f"<h1>Example app</h1><p id=refused>identity did not sign you in: "
                f"{html.escape(error)}.</p><p><a id=login href='/login'>Try again</a></p>"
            )
        verifier, nonce = state.pending.pop(key)
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(
                (await config())["token_endpoint"],
                data={"grant_type": "authorization_code", "code": code,
                      "redirect_uri": callback, "code_verifier": verifier},
                auth=(client_id, client_secret),
            )  # fmt: skip
        if answer.status_code != 200:
            return _page(f"<p>identity refused: {html.escape(answer.text)}</p>")
        tokens = answer.json()
        claims = await validator.validate_id_token(tokens["id_token"], nonce=nonce)
        cookie = secrets.token_urlsafe(32)
        state.sessions[cookie] = {"claims": claims, "id_token": tokens["id_token"]}
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="lax")
        return response

    @app.get("/logout")
    async def logout(request: Request) -> RedirectResponse:
        signed_in = state.sessions.pop(request.cookies.get(COOKIE, ""), None)
        if signed_in is None:
            return RedirectResponse("/", 303)
        query = {"id_token_hint": signed_in["id_token"], "post_logout_redirect_uri": f"{base}/"}
        return RedirectResponse(f"{(await config())['end_session_endpoint']}?{urlencode(query)}")

    async def ended(sid: str | None, sub: str | None) -> None:
        """identity says the member's session ended: so does ours."""
        for cookie, signed_in in list(state.sessions.items()):
            if sid and signed_in["claims"].get("sid") == sid:
                del state.sessions[cookie]

    app.include_router(backchannel_logout_router(validator, ended, path="/backchannel-logout"))
    if events_secret:
        people(app, state, DirectoryReader(identity, client_id, client_secret), events_secret)
    return app


def people(app: FastAPI, state: State, reader: DirectoryReader, events_secret: str) -> None:
    """The People page: the signed-in member's enterprise as identity's directory has it now,
    and the changes identity told the app about; the page reloads when another arrives."""

    async def heard(events: list[DirectoryEvent]) -> None:
        state.events[:0] = reversed(events)
        del state.events[20:]
        state.heard += len(events)

    app.include_router(events_router(EventReceiver(events_secret), heard))

    @app.get("/people/heard")
    async def latest() -> dict[str, int]:
        return {"heard": state.heard}

    @app.get("/people", response_model=None)
    async def listing(request: Request) -> Response:
        signed_in = state.sessions.get(request.cookies.get(COOKIE, ""))
        if signed_in is None:
            return RedirectResponse("/", 303)
        tenant_id = str(signed_in["claims"]["tenant_id"])
        rows = []
        async for user in reader.users(tenant_id):
            role = user.roles[0].value if user.roles else ""
            state_ = "active" if user.active else "inactive"
            rows.append(
                f"<tr><td>{html.escape(str(user.display_name or ''))}</td>"
                f"<td>{html.escape(str(user.user_name))}</td><td>{html.escape(str(role))}</td>"
                f"<td class={state_}>{state_}</td></tr>"
            )
        changes = "".join(
            f"<li>{html.escape(e.type)} · {html.escape(_named(e))}</li>" for e in state.events[:8]
        )
        heard = state.heard
        return _page(
            "<h1>People</h1><p>Your enterprise, as identity's directory has it (SCIM).</p>"
            "<table class=claims id=people><tr class=head><th>Name</th><th>User</th><th>Role</th>"
            f"<th>State</th></tr>{''.join(rows)}</table>"
            "<h2>Changes identity sent</h2>"
            f"<ul id=changes>{changes or '<li>None yet.</li>'}</ul>"
            "<p><a href='/'>Back</a></p>"
            f"<script>setInterval(async()=>{{const r=await fetch('/people/heard');"
            f"if((await r.json()).heard!=={heard})location.reload()}},2000)</script>"
        )


def _named(event: DirectoryEvent) -> str:
    """Who or what an event is about, for people."""
    resource = event.resource or {}
    return str(resource.get("userName") or resource.get("displayName") or event.resource_id)
