"""What every console route does before and after its action: answer this machine only, find
the signed-in buyer, check the form's CSRF token, refuse an upload too large before reading it,
and answer with a page that is `no-store`, not to be framed and runs no script (or a 303 to the
page that shows what the action did). The routes themselves are in `routes` and
`reset_routes`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from identity.simulator.console import access, pages
from identity.simulator.console.access import COOKIE, COOKIE_PATH, Flash, Session
from identity.simulator.console.state import Console, Done
from identity.simulator.console.world import NotAllowed
from identity.simulator.scenario import TenantSpec

HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
FORM_BYTES = 64 * 1024
"""What a form may carry besides an uploaded file (its fields, the multipart framing)."""


class Halt(Exception):
    """Answer `response` at once (not from this machine, not signed in, a stale form)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    if console.setup.anywhere:
        return console
    if not access.from_this_machine(request.client.host if request.client else None):
        title = "仅限本机访问 / This machine only"
        message = (
            "控制台只应答本机的请求（以 --console-anywhere 启动可改变）。 / The console answers "
            "this machine only (start the simulator with --console-anywhere to change that)."
        )
        raise Halt(page(pages.refused(title, message), 403))
    return console


def signed_in(request: Request) -> tuple[Console, Session]:
    console = console_of(request)
    session = console.sessions.get(request.cookies.get(COOKIE))
    if session is None or session.account is None:
        raise Halt(RedirectResponse("/console/sign-in", 303))
    return console, session


async def posted(
    request: Request, *, file_bytes: int = 0
) -> tuple[Console, Session, Mapping[str, Any]]:
    """The signed-in console and its form, once the CSRF token is right. A request that says
    it is larger than `file_bytes` (an upload's limit) and a form's fields is refused before
    it is read."""
    console, session = signed_in(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > file_bytes + FORM_BYTES:
        what = ("文件", "file", file_bytes) if file_bytes else ("表单", "form", FORM_BYTES)
        title = "内容过大 / Too large"
        message = (
            f"{what[0]}超过 {what[2] // 1024} KiB。 / The {what[1]} is larger than "
            f"{what[2] // 1024} KiB."
        )
        raise Halt(page(pages.refused(title, message, "/console"), 413))
    form = await request.form(max_files=1 if file_bytes else 0, max_fields=50)
    if not access.csrf_ok(session, form):
        title = "表单已失效 / The form expired"
        message = "请重新打开页面再提交。 / Open the page again and send it from there."
        raise Halt(page(pages.refused(title, message, "/console"), 403))
    return console, session, form


def enterprise_of(console: Console, code: str) -> TenantSpec:
    try:
        return console.enterprise(code)
    except NotAllowed as exc:
        raise Halt(page(pages.refused("没有这个企业 / No such enterprise", exc.en), 404)) from None


def where(tenant: TenantSpec) -> str:
    return f"/console/enterprises/{quote(tenant.tenant_code, safe='')}"


def after(session: Session, done: Done, location: str) -> Response:
    """A 303 to `location`, which shows what was done once."""
    number = done.delivery.number if done.delivery else None
    session.flash = Flash(done.zh, done.en, number, done.imported)
    return RedirectResponse(location, 303)


def take_flash(session: Session) -> Flash | None:
    flash, session.flash = session.flash, None
    return flash


def with_cookie(response: Response, session: Session) -> Response:
    response.set_cookie(
        COOKIE, session.id, path=COOKIE_PATH, httponly=True, samesite="strict", secure=False
    )
    return response
