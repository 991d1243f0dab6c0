"""The console's web routes, under `/console` on the auth centre. Thin: each checks who is
asking (`access`), reads its form (`forms`), runs one action (`actions`, `members`) and answers
with the next page: a 303 to the page the action came from, which shows what it did and what
the ISV answered, or the same page again (422) with the reason by the form that was refused.

Pages: `/console` (the buyer's enterprises, create one, syncs not delivered),
`/console/sign-in`, `/console/enterprises/{code}` (the app, departments, members, import,
authorisation, syncs, dissolve) and `/console/enterprises/{code}/members/{account}/reset`.
Every page is `no-store`, not to be framed, and runs no script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from identity.simulator.console import access, actions, forms, members, pages
from identity.simulator.console import world as edits
from identity.simulator.console.access import COOKIE, COOKIE_PATH, Flash, Session
from identity.simulator.console.passwords import Messages
from identity.simulator.console.state import Console, ConsoleSetup, Done
from identity.simulator.console.world import NotAllowed
from identity.simulator.oauth import Issuer
from identity.simulator.scenario import MemberSpec, TenantSpec

router = APIRouter()
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


class Halt(Exception):
    """Answer `response` at once (not from this machine, not signed in, a stale form)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def install(app: FastAPI, issuer: Issuer, setup: ConsoleSetup) -> Console:
    """The console on the auth centre `app`, changing the world `issuer` serves from."""
    console = Console(issuer.world, issuer, setup, Messages(setup.notify_file))
    app.state.console = console

    async def halted(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Halt)
        return exc.response

    app.add_exception_handler(Halt, halted)
    app.include_router(router)
    return console


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    if console.setup.anywhere:
        return console
    if not access.from_this_machine(request.client.host if request.client else None):
        title = "仅限本机访问 / This machine only"
        message = (
            "控制台只应答本机的请求（以 --console-anywhere 启动可改变）。 / The console answers "
            "this machine only (start the simulator with --console-anywhere to change that)."
        )
        raise Halt(_page(pages.refused(title, message), 403))
    return console


def _signed_in(request: Request) -> tuple[Console, Session]:
    console = _console(request)
    session = console.sessions.get(request.cookies.get(COOKIE))
    if session is None or session.account is None:
        raise Halt(RedirectResponse("/console/sign-in", 303))
    return console, session


async def _posted(request: Request) -> tuple[Console, Session, Mapping[str, Any]]:
    console, session = _signed_in(request)
    form = await request.form(max_files=1, max_fields=50)
    if not access.csrf_ok(session, form):
        title = "表单已失效 / The form expired"
        message = "请重新打开页面再提交。 / Open the page again and send it from there."
        raise Halt(_page(pages.refused(title, message, "/console"), 403))
    return console, session, form


def _enterprise(console: Console, code: str) -> TenantSpec:
    try:
        return console.enterprise(code)
    except NotAllowed as exc:
        raise Halt(_page(pages.refused("没有这个企业 / No such enterprise", exc.en), 404)) from None


def _where(tenant: TenantSpec) -> str:
    return f"/console/enterprises/{quote(tenant.tenant_code, safe='')}"


def _after(session: Session, done: Done, location: str) -> Response:
    number = done.delivery.number if done.delivery else None
    session.flash = Flash(done.zh, done.en, number, done.imported)
    return RedirectResponse(location, 303)


def _take_flash(session: Session) -> Flash | None:
    flash, session.flash = session.flash, None
    return flash


# --- sign-in ------------------------------------------------------------------------------------


def _with_cookie(response: Response, session: Session) -> Response:
    response.set_cookie(
        COOKIE, session.id, path=COOKIE_PATH, httponly=True, samesite="strict", secure=False
    )
    return response


@router.get("/console/sign-in")
async def sign_in_page(request: Request) -> Response:
    console = _console(request)
    session = console.sessions.get(request.cookies.get(COOKIE))
    if session is not None and session.account is not None:
        return RedirectResponse("/console", 303)
    session = session or console.sessions.new()
    return _with_cookie(_page(pages.sign_in(session.csrf)), session)


@router.post("/console/sign-in")
async def sign_in(request: Request) -> Response:
    console = _console(request)
    form = await request.form(max_files=0, max_fields=10)
    account, password = str(form.get("account", "")), str(form.get("password", ""))
    before = console.sessions.get(request.cookies.get(COOKIE))
    if before is None or not access.csrf_ok(before, form):
        before = console.sessions.new()
        error = "表单已失效，请重试 / The form expired: try again"
        page = _page(pages.sign_in(before.csrf, account=account, error=error), 403)
        return _with_cookie(page, before)
    wait = console.sessions.closed_for()
    if wait:
        error = f"密码错误次数过多，请 {wait} 秒后再试 / Too many wrong passwords: wait {wait} s"
        return _page(pages.sign_in(before.csrf, account=account, error=error), 429)
    session = console.sessions.sign_in(console.scenario.buyer, account, password)
    if session is None:
        error = "账号或密码错误 / Wrong account or password"
        if console.scenario.buyer is None:
            error = "此场景没有买家账号（scenario 的 buyer） / The scenario has no buyer"
        return _page(pages.sign_in(before.csrf, account=account, error=error), 401)
    console.sessions.end(before)
    return _with_cookie(RedirectResponse("/console", 303), session)


@router.post("/console/sign-out")
async def sign_out(request: Request) -> Response:
    console, session, _form = await _posted(request)
    console.sessions.end(session)
    response = RedirectResponse("/console/sign-in", 303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


# --- enterprises ----------------------------------------------------------------------------------


@router.get("/console")
async def home(request: Request) -> Response:
    console, session = _signed_in(request)
    return _page(pages.home(console, session, _take_flash(session)))


@router.post("/console/enterprises")
async def create_enterprise(request: Request) -> Response:
    console, session, form = await _posted(request)
    try:
        name, code = forms.enterprise(form)
        done = await actions.create_enterprise(console, name, code)
    except NotAllowed as exc:
        values = {k: str(v) for k, v in form.items() if k in ("name", "code")}
        page = pages.home(console, session, None, error=("create", exc), values=values)
        return _page(page, 422)
    return _after(session, done, f"/console/enterprises/{quote(code, safe='')}")


@router.get("/console/enterprises/{code}")
async def enterprise(request: Request, code: str) -> Response:
    console, session = _signed_in(request)
    tenant = _enterprise(console, code)
    return _page(pages.enterprise(console, session, tenant, _take_flash(session)))


Act = Callable[[Console, TenantSpec, Mapping[str, Any]], Awaitable[Done]]


async def _act(
    request: Request, code: str, section: str, act: Act, *, leave: bool = False
) -> Response:
    """Run one action on enterprise `code`; refused, the enterprise page again with the reason
    in `section`. `leave`: back to the list afterwards (the enterprise is gone)."""
    console, session, form = await _posted(request)
    tenant = _enterprise(console, code)
    try:
        done = await act(console, tenant, form)
    except NotAllowed as exc:
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
        values = values if section in ("department", "add-member") else {}  # the add forms'
        tenant = _enterprise(console, code)
        page = pages.enterprise(console, session, tenant, None, error=(section, exc), values=values)
        return _page(page, 422)
    return _after(session, done, "/console" if leave else _where(tenant))


@router.post("/console/enterprises/{code}/bind")
async def bind(request: Request, code: str) -> Response:
    return await _act(request, code, "app", lambda c, t, _f: actions.bind(c, t.tenant_id))


@router.post("/console/enterprises/{code}/dissolve")
async def dissolve(request: Request, code: str) -> Response:
    async def act(console: Console, tenant: TenantSpec, _form: Mapping[str, Any]) -> Done:
        return await actions.dissolve(console, tenant.tenant_id)

    return await _act(request, code, "dissolve", act, leave=True)


# --- departments ----------------------------------------------------------------------------------


@router.post("/console/enterprises/{code}/departments")
async def add_department(request: Request, code: str) -> Response:
    async def act(console: Console, tenant: TenantSpec, form: Mapping[str, Any]) -> Done:
        org_code, name = forms.org_code(form), forms.department_name(form)
        parent = forms.chosen(form, "parent_code")
        return await actions.add_department(console, tenant.tenant_id, org_code, name, parent)

    return await _act(request, code, "department", act)


@router.post("/console/enterprises/{code}/departments/{change}")
async def change_department(request: Request, code: str, change: str) -> Response:
    async def act(console: Console, tenant: TenantSpec, form: Mapping[str, Any]) -> Done:
        org_code = forms.chosen(form, "org_code")
        if change == "rename":
            name = forms.department_name(form)
            return await actions.rename_department(console, tenant.tenant_id, org_code, name)
        if change == "move":
            parent = forms.chosen(form, "parent_code")
            return await actions.move_department(console, tenant.tenant_id, org_code, parent)
        if change == "delete":
            return await actions.delete_department(console, tenant.tenant_id, org_code)
        raise NotAllowed("不支持的操作", f"No such change: {change}")

    return await _act(request, code, "department-change", act)


# --- members --------------------------------------------------------------------------------------


@router.post("/console/enterprises/{code}/members")
async def add_member(request: Request, code: str) -> Response:
    async def act(console: Console, tenant: TenantSpec, form: Mapping[str, Any]) -> Done:
        department = forms.chosen(form, "department")
        return await members.add_member(console, tenant.tenant_id, forms.member(form, department))

    return await _act(request, code, "add-member", act)


@router.post("/console/enterprises/{code}/members/import")
async def import_members(request: Request, code: str) -> Response:
    async def act(console: Console, tenant: TenantSpec, form: Mapping[str, Any]) -> Done:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise NotAllowed("请选择 CSV 文件", "Choose a CSV file")
        rows = forms.read_csv(await upload.read(forms.MAX_IMPORT_BYTES + 1))
        return await members.import_members(console, tenant.tenant_id, rows)

    return await _act(request, code, "import", act)


# --- password resets (before the member actions: `reset` is no action of theirs) ---------------


def _member(tenant: TenantSpec, user_name: str) -> MemberSpec:
    try:
        return edits.member_of(tenant, user_name)
    except NotAllowed as exc:
        raise Halt(_page(pages.refused("没有这个成员 / No such member", exc.en), 404)) from None


@router.get("/console/enterprises/{code}/members/{user_name}/reset")
async def reset_page(request: Request, code: str, user_name: str) -> Response:
    console, session = _signed_in(request)
    tenant = _enterprise(console, code)
    member = _member(tenant, user_name)
    return _page(pages.reset(console, session, tenant, member))


async def _reset_form(
    request: Request, code: str, user_name: str
) -> tuple[Console, Session, Mapping[str, Any], TenantSpec, MemberSpec]:
    console, session, form = await _posted(request)
    tenant = _enterprise(console, code)
    return console, session, form, tenant, _member(tenant, user_name)


@router.post("/console/enterprises/{code}/members/{user_name}/reset")
async def request_reset(request: Request, code: str, user_name: str) -> Response:
    """The new password typed; the code sent to the administrator's phone."""
    console, session, form, tenant, member = await _reset_form(request, code, user_name)
    new, again = str(form.get("new_password", "")), str(form.get("again", ""))
    try:
        reset_id, sent_to = await members.request_reset(
            console, tenant.tenant_id, user_name, new, again
        )
    except NotAllowed as exc:
        return _page(pages.reset(console, session, tenant, member, error=("reset", exc)), 422)
    page = pages.reset(console, session, tenant, member, reset_id=reset_id, sent_to=sent_to)
    return _page(page)


@router.post("/console/enterprises/{code}/members/{user_name}/reset/confirm")
async def confirm_reset(request: Request, code: str, user_name: str) -> Response:
    console, session, form, tenant, member = await _reset_form(request, code, user_name)
    reset_id, typed = str(form.get("reset_id", "")), str(form.get("code", ""))
    try:
        done = await members.confirm_reset(console, tenant.tenant_id, user_name, reset_id, typed)
    except NotAllowed as exc:
        try:  # a wrong code: the code form again, while the reset still waits for one
            console.resets.pending(reset_id, (tenant.tenant_id, user_name))
        except NotAllowed:
            reset_id = ""
        page = pages.reset(
            console, session, tenant, member, reset_id=reset_id or None, error=("reset", exc)
        )
        return _page(page, 422)
    return _after(session, done, _where(tenant))


MEMBER_OPS: dict[str, Callable[[Console, str, str], Awaitable[Done]]] = {
    "disable": lambda c, t, u: members.set_enabled(c, t, u, False),
    "enable": lambda c, t, u: members.set_enabled(c, t, u, True),
    "delete": members.delete_member,
    "authorise": lambda c, t, u: members.authorise(c, t, [u], True),
    "cancel": lambda c, t, u: members.authorise(c, t, [u], False),
    "admin": lambda c, t, u: members.set_role(c, t, u, "admin"),
    "user": lambda c, t, u: members.set_role(c, t, u, "user"),
}


@router.post("/console/enterprises/{code}/members/{user_name}/{op}")
async def member_op(request: Request, code: str, user_name: str, op: str) -> Response:
    async def act(console: Console, tenant: TenantSpec, _form: Mapping[str, Any]) -> Done:
        if op not in MEMBER_OPS:
            raise NotAllowed("不支持的操作", f"No such action: {op}")
        return await MEMBER_OPS[op](console, tenant.tenant_id, user_name)

    return await _act(request, code, "member", act)


@router.post("/console/enterprises/{code}/authorise")
async def authorise_department(request: Request, code: str) -> Response:
    async def act(console: Console, tenant: TenantSpec, form: Mapping[str, Any]) -> Done:
        org_code = forms.chosen(form, "org_code")
        authorised = form.get("op") != "cancel"
        return await members.authorise_department(console, tenant.tenant_id, org_code, authorised)

    return await _act(request, code, "authorise", act)


# --- deliveries -----------------------------------------------------------------------------------


@router.post("/console/deliveries/{number}/again")
async def send_again(request: Request, number: int) -> Response:
    console, session, form = await _posted(request)
    back = str(form.get("back", ""))
    try:
        location = _where(console.enterprise(back)) if back else "/console"
    except NotAllowed:
        location = "/console"
    try:
        done = await actions.send_again(console, number)
    except NotAllowed as exc:
        done = Done(exc.zh, exc.en)
    return _after(session, done, location)
