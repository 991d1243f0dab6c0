"""`/admin`: the console's pages (server-rendered, the shared layout, no script). Thin like the
API: each page reads with the same service functions. Each form (end sessions, the two steps of
a password reset) posts the session's CSRF token. A visitor who is not signed in is sent to sign
in and brought back; a member who is not an admin (or no longer one: checked on every request)
gets a page saying so: every admin error of a console route is answered here (`ConsoleRoute`),
whoever raised it."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from identity import web
from identity.admin import auth, member_detail, reset_limits, resets, service, sync_log
from identity.admin.auth import Admin, check_csrf, current_admin
from identity.admin.errors import (
    AdminError,
    BadRequest,
    CodeInvalid,
    MemberNotFound,
    NotAdmin,
    RateLimited,
    TooManyResets,
)
from identity.admin.inputs import clean_input, number
from identity.admin.reset_limits import LONGEST
from identity.db import utcnow
from identity.pages import render
from identity.sessions import SignedIn, hash_id
from identity.web import FormRefused, Read, Surface, Write, read_form

MAX_FORM_FIELDS = 8
LONGEST_WAIT = int(LONGEST.total_seconds())
"""No limit makes an admin wait longer than its longest window (`wait` of the member page)."""
MOST_SESSIONS_ENDED = 10**9
Console = Annotated[Admin, Depends(current_admin)]
STATE_WORDS = {
    "enabled": ("正常", "Enabled"),
    "disabled": ("已停用", "Disabled"),
    "cancelled": ("已取消授权", "Authorisation cancelled"),
    "deleted": ("已删除", "Deleted"),
    "authorised": ("已授权", "Authorised"),
}


def refused(request: Request, error: AdminError) -> Response:
    """An admin page refused: not signed in → sign in and come back; a member who is not an
    admin → a page of their own; else a page."""
    if error.status == 401:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/sso/login?" + urlencode({"next": back}), 303)
    if isinstance(error, NotAdmin) and error.member is not None:
        return _not_admin(request, error, error.member)
    return render(request, "admin_refused.html", error.status, error=error)


def _not_admin(request: Request, error: NotAdmin, member: SignedIn) -> Response:
    """Who they are signed in as, a way to sign in as someone else (sign out, through the
    auth centre's logout, then the console's sign-in for the same enterprise) and their own
    account's page."""
    sessions = web.sessions(request)
    raw_id = request.cookies.get(sessions.cookies.session) or ""
    again = "/sso/login?" + urlencode({"tenant": member.tenant_id, "next": "/admin"})
    context = {"member": member, "csrf": sessions.csrf_token(raw_id), "again": again}
    return render(request, "admin_not_admin.html", error.status, error=error, **context)


class ConsoleRoute(Surface):
    answers = (AdminError,)

    def answer(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, AdminError)
        return refused(request, error)


router = APIRouter(
    prefix="/admin",
    include_in_schema=False,
    dependencies=[Depends(clean_input)],
    route_class=ConsoleRoute,
)


def _page(request: Request, admin: Admin, name: str, **context: Any) -> HTMLResponse:
    return render(request, name, admin=admin, states=STATE_WORDS, **context)


async def _department_options(db: AsyncSession, admin: Admin) -> list[tuple[str, str, int]]:
    """(orgCode, name, depth) in tree order, for the department filter."""
    roots = await service.departments(db, admin.tenant_id)
    options: list[tuple[str, str, int]] = []

    def walk(nodes: list[service.DepartmentNode], depth: int) -> None:
        for node in nodes:
            options.append((node.org_code, node.name, depth))
            walk(node.children, depth + 1)

    walk(roots, 0)
    return options


@router.get("")
async def members(
    request: Request,
    admin: Console,
    db: Read,
    q: str = "",
    org_code: str = "",
    state: str = "",
    cursor: str = "",
) -> HTMLResponse:
    query = service.MemberQuery(q=q.strip(), org_code=org_code, state=state, cursor=cursor)
    page = await service.members(db, admin.tenant_id, query)
    summary = await service.member_summary(db, admin.tenant_id, query, page)
    departments = await _department_options(db, admin)
    next_url = ""
    if page.next_cursor:
        kept = {"q": q, "org_code": org_code, "state": state, "cursor": page.next_cursor}
        next_url = "/admin?" + urlencode({k: v for k, v in kept.items() if v})
    return _page(
        request,
        admin,
        "admin_members.html",
        page=page,
        query=query,
        departments=departments,
        department_names={code: name for code, name, _ in departments},
        next_url=next_url,
        first_page=not cursor,
        summary=summary_words(summary),
    )


def _n(count: int) -> str:
    return f"{count:,}"


def summary_words(summary: service.MemberSummary) -> tuple[str, str]:
    """Where the page stands, in both languages: "第 1–50 名，共 1,234 名" / "1–50 of 1,234";
    past the threshold "共 10,000+ 名" / "of more than 10,000" (`service.member_summary`)."""
    first, last, before, total = summary.first, summary.last, summary.before, summary.total
    if first is not None and last is not None:
        span = _n(first) if first == last else f"{_n(first)}–{_n(last)}"
        zh, en = f"第 {span} 名", span
    elif before.n is not None:  # more than the threshold come before this page
        zh, en = (
            f"第 {_n(before.n)} 名之后的 {summary.shown} 名",
            f"{summary.shown} past the first {_n(before.n)},",
        )
    else:
        zh, en = f"本页 {summary.shown} 名", f"{summary.shown} on this page,"
    if total.n is None:
        most = _n(service.COUNT_EXACT_UP_TO)
        return (
            f"{zh}；总数未统计（需核对状态的成员超过 {most} 名）",
            f"{en.rstrip(',')}; total not counted (more than {most} members' states to check)",
        )
    if not total.exact:
        return f"{zh}，共 {_n(total.n)}+ 名", f"{en} of more than {_n(total.n)}"
    return f"{zh}，共 {_n(total.n)} 名", f"{en} of {_n(total.n)}"


@router.get("/members/{user_name}")
async def member(
    request: Request,
    admin: Console,
    user_name: str,
    db: Read,
    ended: str = "",
    wait: str = "",
    limit: str = "",
    reset: str = "",
) -> HTMLResponse:
    """The member; after an action, what it did (`ended` sessions, a `reset` done) or how long
    a limit makes the admin `wait`, in seconds, and which `limit` (`reset_limits.Limited`)."""
    sessions_ended = number("ended", ended, 0, MOST_SESSIONS_ENDED) if ended else -1
    seconds = number("wait", wait, 0, LONGEST_WAIT) if wait else 0
    limited = reset_limits.named(limit, seconds) if limit else None
    if limit and limited is None:
        raise BadRequest("limit: not one of the reset limits")
    target = await admin.own_member(user_name)
    detail = await member_detail.member(db, admin.tenant_id, target, hash_id(admin.raw_session_id))
    next_reset = utcnow() + timedelta(seconds=seconds) if seconds > 0 else None
    context = {"detail": detail, "ended": sessions_ended, "reset": reset}
    context |= {"next_reset": next_reset, "limited": limited}
    return _page(request, admin, "admin_member.html", **context)


@router.get("/members/{user_name}/end-sessions")
async def confirm_end_sessions(
    request: Request, admin: Console, user_name: str, db: Read
) -> HTMLResponse:
    """Ask before "End all sessions", naming the member and what ends (the admin's own
    session too, when it is one of them); its form posts the action, Cancel goes back."""
    target = await admin.own_member(user_name)
    detail = await member_detail.member(db, admin.tenant_id, target, hash_id(admin.raw_session_id))
    return _page(request, admin, "admin_confirm_end_sessions.html", detail=detail)


@router.get("/members/{user_name}/password-resets")
async def confirm_reset_start(
    request: Request, admin: Console, user_name: str, db: Read
) -> HTMLResponse:
    """Ask before "Reset password", naming the member and what follows; when a limit refuses
    a reset now, it says which and until when instead of offering the button."""
    target = await admin.own_member(user_name)
    detail = await member_detail.member(db, admin.tenant_id, target)
    if detail.member.state == "deleted":
        raise MemberNotFound()  # as the reset itself would answer
    now = utcnow()
    limited = await resets.next_reset(
        db,
        tenant_id=admin.tenant_id,
        admin_user_name=admin.user_name,
        target_user_name=target,
        now=now,
    )
    next_reset = now + timedelta(seconds=limited.seconds) if limited else None
    context = {"detail": detail, "limited": limited, "next_reset": next_reset}
    return _page(request, admin, "admin_confirm_reset.html", **context)


def _member_page(user_name: str, **query: object) -> str:
    return f"/admin/members/{quote(user_name, safe='')}?{urlencode(query)}"


async def _fields(request: Request) -> dict[str, str]:
    """The posted form (`read_form`); a refused one is the console's 400 page."""
    try:
        return await read_form(request, max_fields=MAX_FORM_FIELDS)
    except FormRefused as exc:
        raise BadRequest(exc.message) from None


Form = Annotated[dict[str, str], Depends(_fields)]


@router.post("/members/{user_name}/password-resets")
async def start_reset(request: Request, admin: Console, user_name: str, fields: Form) -> Response:
    """Step 1: a code to the admin's own phone, then the page asking for it; when a limit
    refuses, back to the member's page, which says when the next reset is allowed."""
    check_csrf(request, admin, fields.get("csrf"))
    target = await admin.own_member(user_name)
    try:
        started = await auth.request_reset(request, admin, target)
    except TooManyResets as refused:
        wait = {"wait": refused.retry_after, "limit": refused.limited.name}
        return RedirectResponse(_member_page(target, **wait), 303)
    except RateLimited as limited:
        return RedirectResponse(_member_page(target, wait=limited.retry_after), 303)
    return _page(request, admin, "admin_reset.html", started=started, target=target, error=None)


@router.post("/password-resets/{reset_id}/confirm")
async def confirm_reset(request: Request, admin: Console, reset_id: str, fields: Form) -> Response:
    """Step 2: the code; the member gets an initial password and loses every session."""
    check_csrf(request, admin, fields.get("csrf"))
    target = fields.get("target", "")
    try:
        await auth.confirm_reset(request, admin, reset_id, fields.get("code", ""))
    except CodeInvalid as wrong:
        started = {"reset_id": reset_id, "code_sent_to": fields.get("sent_to", "")}
        context = {"started": started, "target": target, "error": wrong}
        return _page(request, admin, "admin_reset.html", **context)
    return RedirectResponse(_member_page(await admin.own_member(target), reset="done"), 303)


@router.post("/members/{user_name}/end-sessions")
async def end_sessions_form(
    request: Request, admin: Console, user_name: str, fields: Form, db: Write
) -> RedirectResponse:
    """The form is read before the transaction begins: a slow sender holds no lock."""
    check_csrf(request, admin, fields.get("csrf"))
    target = await admin.own_member(user_name)
    ended = await member_detail.end_member_sessions(db, admin.tenant_id, target)
    return RedirectResponse(_member_page(target, ended=ended), 303)


@router.get("/departments")
async def departments(request: Request, admin: Console, db: Read) -> HTMLResponse:
    roots = await service.departments(db, admin.tenant_id)
    return _page(request, admin, "admin_departments.html", roots=roots)


@router.get("/syncs")
async def syncs(request: Request, admin: Console, db: Read, cursor: str = "") -> HTMLResponse:
    """The calls in words: what each did to the tenant (`sync_log`), its result; the raw
    interface, code and message as a detail."""
    rows, next_cursor = await service.syncs(db, admin.tenant_id, service.DEFAULT_LIMIT, cursor)
    entries = await sync_log.entries(db, admin.tenant_id, rows)
    next_url = "/admin/syncs?" + urlencode({"cursor": next_cursor}) if next_cursor else ""
    return _page(request, admin, "admin_syncs.html", entries=entries, next_url=next_url)
