"""`/login`: signing in with a local password (`account@tenantCode`), into the same kind of
session as a marketplace login, for the tenant's app or the one the member picks.

A member has a local password only once an admin reset it (identity.admin.resets); until they
change it (`must_change`) the only thing it opens is the change form, and no session is made.
The forms carry a CSRF token, double-submitted: a random value in an HttpOnly cookie and in the
form. Every refused sign-in shows the same message (identity.admin.errors.SignInFailed).

A password is typed once. The forms that follow a sign-in carry a proof of it instead: a MAC of
what it was for (`pick` or `change`, so one cannot stand for the other), who, which password
(its `set_at`), the form's CSRF value (so only this browser can post it) and an expiry. The
change form asks only for the new password, twice (`CHANGE_SECONDS` to choose it); when the
member has several apps, the app picked is posted with its own proof (`PICK_SECONDS`). A proof
that is forged, altered, expired or for a password replaced meanwhile is `SignInExpired`: the
sign-in form again.

Each try that would check a password is first counted against the client's address
(identity.admin.throttle, by way of identity.admin.passwords); every field but the passwords
is refused with 400 when it holds a control character (a NUL cannot reach the database; here
the C1 controls too). Every admin error of these routes is answered with the sign-in form again
(`LoginRoute`), whoever raised it.
"""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from identity import web
from identity.admin import passwords
from identity.admin.errors import (
    AdminError,
    BadRequest,
    CsrfFailed,
    SignInExpired,
    SignInFailed,
)
from identity.admin.passwords import Attempt, PasswordPolicyError, SignIn
from identity.db import utcnow
from identity.pages import render
from identity.sessions import Seen, hash_id
from identity.sso.limits import address_key
from identity.sso.refusals import Refusal
from identity.web import Db, FormRefused, Surface, local_login_mac, password_throttle, read_form

router = APIRouter(prefix="/login", include_in_schema=False)
log = structlog.get_logger("identity.admin")
PICK_SECONDS = 300
CHANGE_SECONDS = 600
MISMATCH = passwords.Problem(
    "mismatch", "两次输入的新密码不一致。", "The two new passwords differ."
)
MAX_FIELDS = 12
PASSWORD_FIELDS = frozenset({"password", "new", "again"})
"""Fields that only ever reach the hash, never the database: any character is theirs."""
EXPIRES = re.compile(r"[0-9]{1,12}")


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _form_cookie(request: Request) -> str:
    return web.sessions(request).cookies.form


async def _form(request: Request) -> dict[str, str]:
    """The posted form (`read_form`) with its CSRF value checked."""
    try:
        fields = await read_form(request, max_fields=MAX_FIELDS, free=PASSWORD_FIELDS)
    except FormRefused as exc:
        raise BadRequest(exc.message) from None
    cookie = request.cookies.get(_form_cookie(request), "")
    sent = fields.get("csrf", "")
    if not cookie or not secrets.compare_digest(cookie.encode(), sent.encode()):
        raise CsrfFailed()
    for name, value in fields.items():
        if name not in PASSWORD_FIELDS and any(unicodedata.category(c) == "Cc" for c in value):
            raise BadRequest(f"{name}: control characters are not allowed")
    return fields


def _page(request: Request, name: str, status: int, **context: Any) -> HTMLResponse:
    """A form page; it (re)sets the form's CSRF cookie, whose value the form carries."""
    token = request.cookies.get(_form_cookie(request)) or secrets.token_urlsafe(24)
    response = render(request, name, status, csrf=token, **context)
    cookies = web.sessions(request).cookies
    cookies.set(response, cookies.form, token, path=cookies.form_path, samesite="strict")
    return response


def refused(request: Request, error: AdminError) -> HTMLResponse:
    """A refused form (a stale CSRF value, a failed pick, a limit): the sign-in form again,
    saying so; a limit says when to try again (`Retry-After`)."""
    response = _page(
        request, "local_login.html", error.status, error=error, account="", app="", next=""
    )
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


class LoginRoute(Surface):
    answers = (AdminError,)

    def answer(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, AdminError)
        return refused(request, error)


router = APIRouter(prefix="/login", include_in_schema=False, route_class=LoginRoute)


@router.get("")
async def login_form(request: Request, app: str = "", next: str = "") -> HTMLResponse:
    return _page(request, "local_login.html", 200, app=app, next=next, account="")


def _attempt(request: Request, account: str, password: str) -> Attempt:
    """A try at `userName@tenantCode` (a malformed account is tried, and fails, like any
    unknown one: one message and one hash for every refusal)."""
    user_name, _, tenant_code = account.strip().rpartition("@")
    return Attempt(tenant_code, user_name, password, address_key(_client(request)), utcnow())


@router.post("")
async def login(request: Request, db: Db) -> Response:
    fields = await _form(request)
    account = fields.get("account", "")
    attempt = _attempt(request, account, fields.get("password", ""))
    try:
        sign_in = await passwords.authenticate(db, password_throttle(request), attempt)
    except SignInFailed as exc:
        context = {"account": account, **_carry(fields)}
        return _page(request, "local_login.html", 401, error=exc, **context)
    if sign_in.must_change:
        proof = _Proof.of(request, "change", sign_in, fields["csrf"], CHANGE_SECONDS)
        return _change_page(request, 200, account, proof, fields)
    return await _signed_in(request, sign_in, fields)


@router.post("/change")
async def change(request: Request, db: Db) -> Response:
    """The first thing after signing in with an initial password: a new password, typed twice;
    the sign-in is proved by the form (`_Proof`), not by the password again. The member's other
    sessions end; this browser's stays (`keep`)."""
    fields = await _form(request)
    proof = _Proof.posted(request, "change", fields)
    new, again = fields.get("new", ""), fields.get("again", "")
    problems: list[passwords.Problem] = [MISMATCH] if new != again else []
    if not problems:
        raw_session = request.cookies.get(web.sessions(request).cookies.session)
        keep = hash_id(raw_session) if raw_session else None
        address = address_key(_client(request))
        try:
            sign_in = await passwords.change_password(
                db,
                password_throttle(request),
                proof.sign_in,
                new,
                address=address,
                now=utcnow(),
                keep=keep,
            )
        except PasswordPolicyError as exc:
            problems = exc.problems
        else:
            return await _signed_in(request, sign_in, fields)
    return _change_page(request, 400, fields.get("account", ""), proof, fields, problems)


def _change_page(
    request: Request,
    status: int,
    account: str,
    proof: _Proof,
    fields: dict[str, str],
    problems: list[passwords.Problem] | None = None,
) -> HTMLResponse:
    context = {"account": account, "proof": proof, "problems": problems or [], **_carry(fields)}
    return _page(request, "local_change.html", status, **context)


def _carry(fields: dict[str, str]) -> dict[str, str]:
    return {"app": fields.get("app", ""), "next": fields.get("next", "")}


@dataclass(frozen=True)
class _Proof:
    """That this browser signed in a moment ago with the password `sign_in.set_at` names:
    what the forms after a sign-in carry instead of the password (hidden fields `tenant`,
    `user`, `set_at`, `expires`, `proof`). `purpose` is `change` or `pick`, so a proof for one
    form is worth nothing on the other; the form's CSRF value binds it to the browser."""

    purpose: str
    sign_in: SignIn
    csrf: str
    expires: int
    mac: str = ""

    def message(self) -> str:
        sign_in = self.sign_in
        parts = [self.purpose, sign_in.tenant_id, sign_in.user_name, sign_in.set_at.isoformat()]
        return "|".join([*parts, self.csrf, str(self.expires)])

    @property
    def set_at(self) -> str:
        return self.sign_in.set_at.isoformat()

    @classmethod
    def of(cls, request: Request, purpose: str, sign_in: SignIn, csrf: str, seconds: int) -> _Proof:
        unsigned = cls(purpose, sign_in, csrf, int(time.time()) + seconds)
        return replace(unsigned, mac=local_login_mac(request).sign(unsigned.message()))

    @classmethod
    def posted(cls, request: Request, purpose: str, fields: dict[str, str]) -> _Proof:
        """The proof a form posted back; `SignInExpired` unless it is ours, for `purpose`,
        for this browser's CSRF value (`_form` checked it against the cookie) and in time.
        `must_change` is what the purpose implies; `app_ids` holds the app a pick names."""
        if not EXPIRES.fullmatch(fields.get("expires", "")):
            raise BadRequest("expires: not a time")
        try:
            set_at = datetime.fromisoformat(fields.get("set_at", ""))
        except ValueError:
            raise SignInExpired() from None
        app = (fields.get("app", ""),) if purpose == "pick" else ()
        who = (fields.get("tenant", ""), fields.get("user", ""))
        sign_in = SignIn(*who, purpose == "change", app, set_at)
        proof = cls(
            purpose, sign_in, fields["csrf"], int(fields["expires"]), fields.get("proof", "")
        )
        if proof.expires < time.time():
            raise SignInExpired()
        if not local_login_mac(request).verify(proof.message(), proof.mac):
            raise SignInExpired()
        return proof


async def _signed_in(request: Request, sign_in: SignIn, fields: dict[str, str]) -> Response:
    """The app (asked for, or the only one, or picked next) and then the session."""
    app = fields.get("app", "")
    if app not in sign_in.app_ids:
        if len(sign_in.app_ids) > 1:
            proof = _Proof.of(request, "pick", sign_in, fields["csrf"], PICK_SECONDS)
            context = {"sign_in": sign_in, "proof": proof, "next": fields.get("next", "")}
            return _page(request, "local_app.html", 200, **context)
        app = sign_in.app_ids[0]
    return await _open(request, sign_in, app, fields.get("next", ""))


@router.post("/app")
async def pick_app(request: Request) -> Response:
    fields = await _form(request)
    try:
        sign_in = _Proof.posted(request, "pick", fields).sign_in
    except SignInExpired:
        raise SignInFailed() from None
    return await _open(request, sign_in, sign_in.app_ids[0], fields.get("next", ""))


async def _open(request: Request, sign_in: SignIn, app_id: str, next_: str) -> Response:
    sessions = web.sessions(request)
    target = sessions.checked_redirect(next_ or None, sessions.post_login_url)
    if target is None:
        raise Refusal("redirect_not_allowed", "the sign-in's next address")

    async def password_still_current(conn: Any) -> None:
        if not await passwords.still_current(conn, sign_in):
            raise SignInFailed()  # changed or reset meanwhile

    try:
        raw_id = await sessions.open(
            sign_in.tenant_id,
            app_id,
            sign_in.user_name,
            tokens=None,
            old_raw_session_id=request.cookies.get(sessions.cookies.session),
            check=password_still_current,
            seen=Seen(request.headers.get("user-agent"), _client(request)),
        )
    except Refusal as exc:
        raise SignInFailed() from exc
    log.info(
        "sso.local_login", tenant_id=sign_in.tenant_id, app_id=app_id, user_name=sign_in.user_name
    )
    response = RedirectResponse(target, status_code=303)
    sessions.cookies.set_session(response, raw_id)
    return response
