"""`/login`: signing in with a local password (`account@tenantCode`), into the same kind of
session as a marketplace login, for the tenant's app or the one the member picks.

A member has a local password only once an admin reset it (identity.admin.resets); until they
change it (`must_change`) the only thing it opens is the change form, and no session is made.
The forms carry a CSRF token, double-submitted: a random value in an HttpOnly cookie and in the
form. Every refused sign-in shows the same message (identity.admin.errors.SignInFailed). When
the member has several apps, the app picked is posted with a token proving the password was
checked a moment ago (a MAC of who, which password, the form's CSRF value and an expiry), so
the password is not sent twice.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from identity.admin import passwords
from identity.admin.errors import AdminError, CsrfFailed, SignInFailed
from identity.admin.passwords import PasswordPolicyError, SignIn
from identity.db import utcnow
from identity.pages import render
from identity.sso import admission
from identity.sso.refusals import Refusal
from identity.sso.service import Sso

router = APIRouter(prefix="/login", include_in_schema=False)
PICK_SECONDS = 300
MISMATCH = passwords.Problem(
    "mismatch", "两次输入的新密码不一致。", "The two new passwords differ."
)
MAX_FIELDS = 12


def _sso(request: Request) -> Sso:
    return request.app.state.sso  # type: ignore[no-any-return]


def _form_cookie(request: Request) -> str:
    return _sso(request).cookies.form


async def _form(request: Request) -> dict[str, str]:
    """The posted form with its CSRF value checked. Small and plain: no file parts."""
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    except Exception as exc:  # a file part, too many fields, not a form
        raise CsrfFailed() from exc
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    cookie = request.cookies.get(_form_cookie(request), "")
    sent = fields.get("csrf", "")
    if not cookie or not secrets.compare_digest(cookie.encode(), sent.encode()):
        raise CsrfFailed()
    return fields


def _page(request: Request, name: str, status: int, **context: Any) -> HTMLResponse:
    """A form page; it (re)sets the form's CSRF cookie, whose value the form carries."""
    token = request.cookies.get(_form_cookie(request)) or secrets.token_urlsafe(24)
    response = render(request, name, status, csrf=token, **context)
    response.set_cookie(
        _form_cookie(request),
        token,
        httponly=True,
        samesite="strict",
        secure=_sso(request).cookies.secure,
        path=_sso(request).cookies.form_path,
    )
    return response


def refused(request: Request, error: AdminError) -> HTMLResponse:
    """A refused form (a stale CSRF value, a failed pick): the sign-in form again, saying so."""
    return _page(
        request, "local_login.html", error.status, error=error, account="", app="", next=""
    )


@router.get("")
async def login_form(request: Request, app: str = "", next: str = "") -> HTMLResponse:
    return _page(request, "local_login.html", 200, app=app, next=next, account="")


def _split(account: str) -> tuple[str, str]:
    user_name, at, tenant_code = account.strip().rpartition("@")
    if not at or not user_name or not tenant_code:
        raise SignInFailed()
    return user_name, tenant_code


@router.post("")
async def login(request: Request) -> Response:
    fields = await _form(request)
    account = fields.get("account", "")
    try:
        user_name, tenant_code = _split(account)
        sign_in = await passwords.authenticate(
            request.app.state.db, tenant_code, user_name, fields.get("password", ""), utcnow()
        )
    except SignInFailed as exc:
        context = {"app": fields.get("app", ""), "next": fields.get("next", "")}
        return _page(request, "local_login.html", 401, error=exc, account=account, **context)
    if sign_in.must_change:
        context = {"account": account, **_carry(fields)}
        return _page(request, "local_change.html", 200, **context)
    return await _signed_in(request, sign_in, fields)


@router.post("/change")
async def change(request: Request) -> Response:
    """The first thing after signing in with an initial password: a new password."""
    fields = await _form(request)
    account = fields.get("account", "")
    new, again = fields.get("new", ""), fields.get("again", "")
    problems: list[Any] = []
    error: AdminError | None = None
    try:
        user_name, tenant_code = _split(account)
        if new != again:
            problems = [
                passwords.Problem(
                    "mismatch", "两次输入的新密码不一致。", "The two new passwords differ."
                )
            ]
        else:
            async with request.app.state.db.single_read() as conn:
                tenant_id = await admission.find_tenant(conn, tenant_code)
            sign_in = await passwords.change_password(
                request.app.state.db,
                tenant_id=tenant_id,
                user_name=user_name,
                current=fields.get("current", ""),
                new=new,
                now=utcnow(),
            )
            return await _signed_in(request, sign_in, fields)
    except PasswordPolicyError as exc:
        problems = exc.problems
    except (AdminError, Refusal) as exc:
        error = exc if isinstance(exc, AdminError) else SignInFailed()
    context = {"account": account, "problems": problems, "error": error, **_carry(fields)}
    return _page(request, "local_change.html", 400, **context)


def _carry(fields: dict[str, str]) -> dict[str, str]:
    return {"app": fields.get("app", ""), "next": fields.get("next", "")}


def _pick_message(sign_in: SignIn, csrf: str, expires: int) -> str:
    return "|".join(
        [sign_in.tenant_id, sign_in.user_name, sign_in.set_at.isoformat(), csrf, str(expires)]
    )


async def _signed_in(request: Request, sign_in: SignIn, fields: dict[str, str]) -> Response:
    """The app (asked for, or the only one, or picked next) and then the session."""
    app = fields.get("app", "")
    if app not in sign_in.app_ids:
        if len(sign_in.app_ids) > 1:
            expires = int(time.time()) + PICK_SECONDS
            proof = request.app.state.local_login_mac.sign(
                _pick_message(sign_in, fields["csrf"], expires)
            )
            return _page(
                request,
                "local_app.html",
                200,
                sign_in=sign_in,
                proof=proof,
                expires=expires,
                set_at=sign_in.set_at.isoformat(),
                next=fields.get("next", ""),
            )
        app = sign_in.app_ids[0]
    return await _open(request, sign_in, app, fields.get("next", ""))


@router.post("/app")
async def pick_app(request: Request) -> Response:
    fields = await _form(request)
    expires = int(fields["expires"]) if fields.get("expires", "").isdigit() else 0
    try:
        set_at = datetime.fromisoformat(fields.get("set_at", ""))
    except ValueError:
        raise SignInFailed() from None
    sign_in = SignIn(
        fields.get("tenant", ""), fields.get("user", ""), False, (fields.get("app", ""),), set_at
    )
    message = _pick_message(sign_in, fields["csrf"], expires)
    if expires < time.time() or not request.app.state.local_login_mac.verify(
        message, fields.get("proof", "")
    ):
        raise SignInFailed()
    return await _open(request, sign_in, sign_in.app_ids[0], fields.get("next", ""))


async def _open(request: Request, sign_in: SignIn, app_id: str, next_: str) -> Response:
    sso = _sso(request)
    target = sso.checked_redirect(next_ or None, sso.post_login_url)

    async def still_current(conn: Any) -> bool:
        return await passwords.still_current(conn, sign_in)

    try:
        raw_id = await sso.open_session(
            sign_in.tenant_id,
            app_id,
            sign_in.user_name,
            request.cookies.get(sso.cookies.session),
            still_current,
        )
    except Refusal as exc:
        raise SignInFailed() from exc
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        sso.cookies.session, raw_id, httponly=True, samesite="lax", secure=sso.cookies.secure
    )
    return response
