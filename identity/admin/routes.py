"""`/api/admin`: the console's operations as JSON, authenticated by the session cookie, unsafe
methods by the `X-CSRF-Token` header too. Thin: each route calls one service function in one
unit of work. Errors are `{"error": code, "message": …}` (400, 401, 403, 404, 429; a password
reset 409, 410 and 503 too), whatever raised them (`ApiRoute`); a control character anywhere in
the query or the path is a 400 before anything else."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from identity.admin import auth, member_detail, schemas, service
from identity.admin.auth import Admin, current_admin, writing_admin
from identity.admin.errors import AdminError, BadRequest, RateLimited
from identity.admin.inputs import clean_input
from identity.sessions import hash_id
from identity.web import Read, Surface, Write, invalid, problem

NO_STORE = {"Cache-Control": "no-store"}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": schemas.Problem} for status in statuses}


ERRORS = _errors(400, 401, 403, 404, 429)


def _answer(_request: Request, error: Exception) -> JSONResponse:
    """An admin error, or a malformed parameter (one message naming it), as JSON."""
    if isinstance(error, RequestValidationError):
        error = BadRequest(invalid(error))
    assert isinstance(error, AdminError)
    if isinstance(error, RateLimited):
        headers = NO_STORE | {"Retry-After": str(error.retry_after)}
        return problem(error.code, error.message, 429, headers, retryAfter=error.retry_after)
    return problem(error.code, error.message, error.status, NO_STORE)


class ApiRoute(Surface):
    answers = (AdminError, RequestValidationError)
    passes = (HTTPException,)

    def answer(self, request: Request, error: Exception) -> Response:
        return _answer(request, error)


router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    responses=ERRORS,
    dependencies=[Depends(clean_input)],
    route_class=ApiRoute,
)
Reader = Annotated[Admin, Depends(current_admin)]
Writer = Annotated[Admin, Depends(writing_admin)]


def _json(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status, headers=NO_STORE)


@router.get("/members", response_model=schemas.MemberList)
async def members(
    admin: Reader,
    db: Read,
    q: str = "",
    org_code: str = "",
    state: str = "",
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = service.DEFAULT_LIMIT,
    cursor: str = "",
) -> JSONResponse:
    """The tenant's members in `userName` order, a page at a time (pass `nextCursor` back as
    `cursor`); `q` is a prefix of the account or the name; `state` is enabled, disabled,
    cancelled or deleted."""
    query = service.MemberQuery(q=q, org_code=org_code, state=state, limit=limit, cursor=cursor)
    page = await service.members(db, admin.tenant_id, query)
    items = [schemas.MemberItem.of(row) for row in page.items]
    return _json(schemas.MemberList(items=items, next_cursor=page.next_cursor))


@router.get("/members/{user_name}", response_model=schemas.MemberOut)
async def member(admin: Reader, user_name: str, db: Read) -> JSONResponse:
    """One member: role, state, each app's authorisation, active sessions (each with how,
    from which browser and address its latest sign-in came, and the apps it holds)."""
    target = await admin.own_member(user_name)
    current = hash_id(admin.raw_session_id)
    detail = await member_detail.member(db, admin.tenant_id, target, current)
    return _json(schemas.MemberOut.of_detail(detail))


@router.post("/members/{user_name}/end-sessions", response_model=schemas.SessionsEnded)
async def end_sessions_api(admin: Writer, user_name: str, db: Write) -> JSONResponse:
    """End every session of the member: their tokens stop working and the apps that received
    them hear it by back-channel logout."""
    target = await admin.own_member(user_name)
    ended = await member_detail.end_member_sessions(db, admin.tenant_id, target)
    return _json(schemas.SessionsEnded(sessions_ended=ended))


@router.get("/departments", response_model=schemas.DepartmentTree)
async def departments(admin: Reader, db: Read) -> JSONResponse:
    roots = await service.departments(db, admin.tenant_id)
    return _json(schemas.DepartmentTree(items=[schemas.DepartmentOut.of(r) for r in roots]))


@router.get("/syncs", response_model=schemas.SyncList)
async def syncs(
    admin: Reader,
    db: Read,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = service.DEFAULT_LIMIT,
    cursor: str = "",
) -> JSONResponse:
    """The marketplace calls that touched the tenant, newest first (never their payloads)."""
    rows, next_cursor = await service.syncs(db, admin.tenant_id, limit, cursor)
    items = [
        schemas.SyncOut(
            interface=r.interface,
            result_code=r.result_code,
            result_msg=r.result_msg,
            received_at=r.received_at,
            test=r.test,
        )
        for r in rows
    ]
    return _json(schemas.SyncList(items=items, next_cursor=next_cursor))


@router.post(
    "/members/{user_name}/password-resets",
    status_code=202,
    response_model=schemas.ResetStarted,
    responses=_errors(409, 503),  # no contact to send the code to; the sender failed
)
async def start_reset(request: Request, admin: Writer, user_name: str) -> JSONResponse:
    """Step 1 of a password reset: a 6-digit code (valid 5 minutes, single use, 5 tries) goes
    to your own mobile (or e-mail). At most one reset every 3 minutes, 15 an hour and 60 a day,
    per member and per admin, counted from the moment the code is sent: 429 with `Retry-After`
    beyond that."""
    started = await auth.request_reset(request, admin, await admin.own_member(user_name))
    body = schemas.ResetStarted(reset_id=started.reset_id, code_sent_to=started.code_sent_to)
    return _json(body, 202)


@router.post(
    "/password-resets/{reset_id}/confirm",
    status_code=204,
    responses=_errors(409, 410),  # used or being confirmed; expired or out of tries
)
async def confirm_reset(
    request: Request, admin: Writer, reset_id: str, body: schemas.ResetCode
) -> Response:
    """Step 2: with the code, the member gets a random initial password on their own mobile or
    e-mail (never shown to you), every session of theirs ends, and they must change the password
    at their next sign-in."""
    await auth.confirm_reset(request, admin, reset_id, body.code)
    return Response(status_code=204, headers=NO_STORE)
