"""The password reset's pages (§6, `resets`): the administrator types the member's new
password, then the code sent to the administrator's phone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from identity.simulator.console import members, pages, web
from identity.simulator.console import world as edits
from identity.simulator.console.access import Session
from identity.simulator.console.state import Console
from identity.simulator.console.world import NotAllowed
from identity.simulator.scenario import MemberSpec, TenantSpec

router = APIRouter()


def _member(tenant: TenantSpec, user_name: str) -> MemberSpec:
    try:
        return edits.member_of(tenant, user_name)
    except NotAllowed as exc:
        raise web.Halt(
            web.page(pages.refused("没有这个成员 / No such member", exc.en), 404)
        ) from None


@router.get("/console/enterprises/{code}/members/{user_name}/reset")
async def reset_page(request: Request, code: str, user_name: str) -> Response:
    console, session = web.signed_in(request)
    tenant = web.enterprise_of(console, code)
    member = _member(tenant, user_name)
    return web.page(pages.reset(console, session, tenant, member))


async def _reset_form(
    request: Request, code: str, user_name: str
) -> tuple[Console, Session, Mapping[str, Any], TenantSpec, MemberSpec]:
    console, session, form = await web.posted(request)
    tenant = web.enterprise_of(console, code)
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
        return web.page(pages.reset(console, session, tenant, member, error=("reset", exc)), 422)
    page = pages.reset(console, session, tenant, member, reset_id=reset_id, sent_to=sent_to)
    return web.page(page)


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
        return web.page(page, 422)
    return web.after(session, done, web.where(tenant))
