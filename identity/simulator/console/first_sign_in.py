"""The first sign-in with a password the member did not choose: a new one before anything else.

A member added in the console gets a random initial password, and one whose password the
administrator reset gets the one the administrator typed; either must be changed at the next
sign-in (contract §6: "must change the initial password on first login"). The auth centre's
login forms (OAuth's and CAS's) call `ask` when the account and password are right and the
member's `mustChangePassword` is set: instead of where the login would go (`Finish`, kept
server side under a random ticket for 10 minutes by the auth centre's clock) the member gets
the change form.

`POST /api/v1/login/change-password` (ticket, new password twice) checks the password rules
(`passwords`), then replaces the member's password in the world, clears `mustChangePassword`,
burns the ticket and answers what the login would have answered (the redirect with the code or
the ticket, and the SSO session). A ticket holds only while the password it was signed in with
is still the member's: a reset in between, or the member deleted, sends them back to sign in.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from identity.simulator import pages
from identity.simulator.console import world as edits
from identity.simulator.console.passwords import password_problems
from identity.simulator.scenario import MemberSpec, TenantSpec, World

CHANGE_PATH = "/api/v1/login/change-password"
TICKET_SECONDS = 600

Finish = Callable[[Request, TenantSpec, MemberSpec], Response]
"""What the login answers once the member may go on: the redirect, with the SSO cookie."""

router = APIRouter()


@dataclass(frozen=True)
class _Held:
    tenant_id: str
    user_name: str
    password: str
    finish: Finish
    expires_at: float


class FirstSignIns:
    """The sign-ins waiting for a new password, by ticket (process memory, like the rest)."""

    def __init__(self, world: World, clock: Callable[[], float]) -> None:
        self.world = world
        self.clock = clock
        self._held: dict[str, _Held] = {}

    def hold(self, tenant: TenantSpec, member: MemberSpec, password: str, finish: Finish) -> str:
        now = self.clock()
        self._held = {t: h for t, h in self._held.items() if h.expires_at > now}
        ticket = secrets.token_urlsafe(32)
        expires = now + TICKET_SECONDS
        self._held[ticket] = _Held(tenant.tenant_id, member.user_name, password, finish, expires)
        return ticket

    def held(self, ticket: str) -> _Held | None:
        found = self._held.get(ticket)
        return found if found is not None and found.expires_at > self.clock() else None

    def forget(self, ticket: str) -> None:
        self._held.pop(ticket, None)


def install(app: FastAPI, world: World, clock: Callable[[], float]) -> None:
    app.state.first_sign_ins = FirstSignIns(world, clock)
    app.include_router(router)


def _form(ticket: str, account: str, problems: list[tuple[str, str]], status: int) -> Response:
    page = pages.change_password_page(
        action=CHANGE_PATH, ticket=ticket, account=account, problems=problems
    )
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def ask(
    request: Request, tenant: TenantSpec, member: MemberSpec, password: str, finish: Finish
) -> Response:
    """The change form, in place of the login's answer `finish`."""
    desk: FirstSignIns = request.app.state.first_sign_ins
    ticket = desk.hold(tenant, member, password, finish)
    return _form(ticket, f"{member.user_name}@{tenant.tenant_code}", [], 200)


def _expired() -> Response:
    page = pages.error_page(
        "登录已失效 / Sign in again",
        "请重新登录：此次登录已过期，或密码已被更改。 / This sign-in expired, or the password "
        "changed since: sign in again.",
    )
    return HTMLResponse(page, status_code=400, headers={"Cache-Control": "no-store"})


@router.post(CHANGE_PATH)
async def change(request: Request) -> Response:
    desk: FirstSignIns = request.app.state.first_sign_ins
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    ticket = form.get("ticket", "")
    held = desk.held(ticket)
    if held is None:
        return _expired()
    try:
        tenant = edits.tenant_of(desk.world.scenario, held.tenant_id)
        member = edits.member_of(tenant, held.user_name)
    except edits.NotAllowed:
        return _expired()
    if member.password != held.password or not member.must_change_password:
        return _expired()
    new, again = form.get("new_password", ""), form.get("again", "")
    problems = password_problems(new, again, member.user_name, member.password)
    if problems:
        return _form(ticket, f"{member.user_name}@{tenant.tenant_code}", problems, 422)
    changed = edits.change_member(
        desk.world.scenario,
        tenant.tenant_id,
        member.user_name,
        password=new,
        must_change_password=False,
    )
    desk.world.replace(changed)
    desk.forget(ticket)
    tenant = edits.tenant_of(changed, held.tenant_id)
    return held.finish(request, tenant, edits.member_of(tenant, held.user_name))
