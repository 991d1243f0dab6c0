"""The console's web routes, under `/console` on the auth centre. Thin: each checks who is
asking and reads its form (`web`), runs one action (`actions`, `members`) and answers with the
next page: a 303 to the page the action came from, which shows what it did and what the ISV
answered, or the same page again (422) with the reason by the form that was refused.

Pages: `/console` (the buyer's enterprises, create one, syncs not delivered),
`/console/sign-in`, `/console/enterprises/{code}` (the app, departments, members, import,
authorisation, syncs, dissolve); the password reset's are in `reset_routes`. Every page is
`no-store`, not to be framed, and runs no script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from identity.simulator.console import access, actions, forms, members, pages, reset_routes, web
from identity.simulator.console.access import COOKIE, COOKIE_PATH
from identity.simulator.console.passwords import Messages
from identity.simulator.console.state import Console, ConsoleSetup, Done
from identity.simulator.console.world import NotAllowed
from identity.simulator.oauth import Issuer
from identity.simulator.scenario import TenantSpec

router = APIRouter()


def install(app: FastAPI, issuer: Issuer, setup: ConsoleSetup) -> Console:
    """The console on the auth centre `app`, changing the world `issuer` serves from."""
    console = Console(issuer.world, issuer, setup, Messages(setup.notify_file))
    app.state.console = console

    async def halted(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, web.Halt)
        return exc.response

    app.add_exception_handler(web.Halt, halted)
    app.include_router(reset_routes.router)  # first: `reset` is no member action (`{op}`)
    app.include_router(router)
    return console


# --- sign-in ------------------------------------------------------------------------------------


@router.get("/console/sign-in")
async def sign_in_page(request: Request) -> Response:
    console = web.console_of(request)
    session = console.sessions.get(request.cookies.get(COOKIE))
    if session is not None and session.account is not None:
        return RedirectResponse("/console", 303)
    session = session or console.sessions.new()
    return web.with_cookie(web.page(pages.sign_in(session.csrf)), session)


@router.post("/console/sign-in")
async def sign_in(request: Request) -> Response:
    console = web.console_of(request)
    form = await request.form(max_files=0, max_fields=10)
    account, password = str(form.get("account", "")), str(form.get("password", ""))
    before = console.sessions.get(request.cookies.get(COOKIE))
    if before is None or not access.csrf_ok(before, form):
        before = console.sessions.new()
        error = "表单已失效，请重试 / The form expired: try again"
        page = web.page(pages.sign_in(before.csrf, account=account, error=error), 403)
        return web.with_cookie(page, before)
    wait = console.sessions.closed_for()
    if wait:
        error = f"密码错误次数过多，请 {wait} 秒后再试 / Too many wrong passwords: wait {wait} s"
        return web.page(pages.sign_in(before.csrf, account=account, error=error), 429)
    session = console.sessions.sign_in(console.scenario.buyer, account, password)
    if session is None:
        error = "账号或密码错误 / Wrong account or password"
        if console.scenario.buyer is None:
            error = "此场景没有买家账号（scenario 的 buyer） / The scenario has no buyer"
        return web.page(pages.sign_in(before.csrf, account=account, error=error), 401)
    console.sessions.end(before)
    return web.with_cookie(RedirectResponse("/console", 303), session)


@router.post("/console/sign-out")
async def sign_out(request: Request) -> Response:
    console, session, _form = await web.posted(request)
    console.sessions.end(session)
    response = RedirectResponse("/console/sign-in", 303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


# --- enterprises ----------------------------------------------------------------------------------


@router.get("/console")
async def home(request: Request) -> Response:
    console, session = web.signed_in(request)
    return web.page(pages.home(console, session, web.take_flash(session)))


@router.post("/console/enterprises")
async def create_enterprise(request: Request) -> Response:
    console, session, form = await web.posted(request)
    try:
        name, code = forms.enterprise(form)
        done = await actions.create_enterprise(console, name, code)
    except NotAllowed as exc:
        values = {k: str(v) for k, v in form.items() if k in ("name", "code")}
        page = pages.home(console, session, None, error=("create", exc), values=values)
        return web.page(page, 422)
    return web.after(session, done, f"/console/enterprises/{quote(code, safe='')}")


@router.get("/console/enterprises/{code}")
async def enterprise(request: Request, code: str) -> Response:
    console, session = web.signed_in(request)
    tenant = web.enterprise_of(console, code)
    return web.page(pages.enterprise(console, session, tenant, web.take_flash(session)))


Act = Callable[[Console, TenantSpec, Mapping[str, Any]], Awaitable[Done]]


async def _act(
    request: Request, code: str, section: str, act: Act, *, leave: bool = False, file_bytes: int = 0
) -> Response:
    """Run one action on enterprise `code`; refused, the enterprise page again with the reason
    in `section`. `leave`: back to the list afterwards (the enterprise is gone). `file_bytes`:
    the form uploads a file of at most that size."""
    console, session, form = await web.posted(request, file_bytes=file_bytes)
    tenant = web.enterprise_of(console, code)
    try:
        done = await act(console, tenant, form)
    except NotAllowed as exc:
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
        values = values if section in ("department", "add-member") else {}  # the add forms'
        tenant = web.enterprise_of(console, code)
        page = pages.enterprise(console, session, tenant, None, error=(section, exc), values=values)
        return web.page(page, 422)
    return web.after(session, done, "/console" if leave else web.where(tenant))


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
        try:
            data = await upload.read(forms.MAX_IMPORT_BYTES + 1)
        finally:
            await upload.close()  # a large one is spooled to a temporary file
        rows = forms.read_csv(data)
        return await members.import_members(console, tenant.tenant_id, rows)

    return await _act(request, code, "import", act, file_bytes=forms.MAX_IMPORT_BYTES)


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
    console, session, form = await web.posted(request)
    back = str(form.get("back", ""))
    try:
        location = web.where(console.enterprise(back)) if back else "/console"
    except NotAllowed:
        location = "/console"
    try:
        done = await actions.send_again(console, number)
    except NotAllowed as exc:
        done = Done(exc.zh, exc.en)
    return web.after(session, done, location)
