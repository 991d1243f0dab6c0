"""The request layer (identity/web.py): the one form reader, the transaction a route takes, a
surface's route class, and the one JSON error shape of identity's own errors."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from identity import web
from identity.app import create_app
from identity.db import Database
from identity.marketplace.audit import claim_nonce
from identity.settings import Settings
from identity.web import FormNotAccepted, FormRefused, Surface, Write, read_form
from tests.helpers.stack import refusal_reason

URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


class Refused(Exception):
    """What the little app below raises on purpose."""


def _answer(_request: Request, error: Exception) -> Response:
    if isinstance(error, FormRefused):
        return JSONResponse({"refused": error.code, "message": error.message}, error.status)
    return JSONResponse({"refused": type(error).__name__}, 418)


class LittleRoute(Surface):
    answers = (FormRefused, Refused)

    def answer(self, request: Request, error: Exception) -> Response:
        return _answer(request, error)


def _refuse() -> None:
    raise Refused()


def little_app(db: Database | None = None) -> FastAPI:
    """Routes reading forms with each option, and writing through `Write`; their errors are
    answered by their surface, through the app's handlers."""
    router = APIRouter(route_class=LittleRoute)
    router_elsewhere = APIRouter()  # another surface's route

    @router.post("/form")
    async def form(request: Request) -> dict[str, str]:
        return await read_form(request, max_bytes=64, max_fields=3, free=frozenset({"pw"}))

    @router.post("/bodiless")
    async def bodiless(request: Request) -> dict[str, str]:
        return await read_form(request, bodiless=True)

    @router.get("/refused-in-a-dependency", dependencies=[Depends(_refuse)])
    async def refused() -> None:
        """Never reached."""

    @router.get("/not-found")
    async def not_found() -> None:
        raise HTTPException(404)

    @router.post("/write/{nonce}")
    async def write(nonce: str, session: Write, fail: bool = False) -> dict[str, bool]:
        claimed = await claim_nonce(session, nonce, 600)
        if fail:
            raise Refused()
        return {"claimed": claimed}

    @router_elsewhere.get("/elsewhere")
    async def elsewhere() -> None:
        raise Refused()

    app = FastAPI()
    app.state.db = db
    app.include_router(router_elsewhere)
    app.include_router(router)
    for error in (FormRefused, Refused):
        app.add_exception_handler(error, web.by_surface(_unanswered))
    return app


def _unanswered(_request: Request, _error: Exception) -> Response:
    return JSONResponse({"refused": "by the app"}, 500)


@pytest.fixture
async def little() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=little_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def post(client: httpx.AsyncClient, path: str, body: bytes | str) -> httpx.Response:
    return await client.post(path, content=body, headers=URLENCODED)


# --- the form reader ------------------------------------------------------------------------


async def test_a_form_is_read_with_blank_values_kept(little: httpx.AsyncClient) -> None:
    answer = await post(little, "/form", "a=1&b=&c=x%20y")
    assert answer.json() == {"a": "1", "b": "", "c": "x y"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a=1&a=1", "field a is repeated"),  # even with one value: which would count?
        ("a=1&b=2&a=3", "field a is repeated"),
        ("a=%00", "a field of the form holds a control character"),
        ("a%7F=1", "a field of the form holds a control character"),
        ("pw%00=1", "a field of the form holds a control character"),  # a free field's name
        ("a=1&b=2&c=3&d=4", "the form has more than 3 fields"),
        (b"a=\xff", "the form is not UTF-8 text"),
        ("a=" + "x" * 63, "the form is larger than 64 bytes"),
    ],
)
async def test_a_form_that_cannot_be_read_as_one_is_refused(
    little: httpx.AsyncClient, body: bytes | str, message: str
) -> None:
    answer = await post(little, "/form", body)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"refused": "bad_request", "message": message}


async def test_a_free_field_may_hold_any_character(little: httpx.AsyncClient) -> None:
    """A password only ever reaches the hash."""
    answer = await post(little, "/form", "pw=a%00b%1Fc")
    assert answer.json() == {"pw": "a\x00b\x1fc"}


async def test_a_form_larger_than_declared_limit_is_refused_unread(
    little: httpx.AsyncClient,
) -> None:
    pulled = [0]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(1000):
            pulled[0] += 1
            yield b"x" * 1024

    streamed = await little.post("/form", content=chunks(), headers=URLENCODED)
    assert streamed.status_code == 400 and pulled[0] < 5
    declared = {**URLENCODED, "Content-Length": "65"}
    answer = await little.post("/form", content=b"a=" + b"x" * 63, headers=declared)
    assert answer.json()["message"] == "the form is larger than 64 bytes"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "multipart/form-data; boundary=x"}, {"Content-Type": "text/plain"}],
)
async def test_only_a_urlencoded_form_is_read(
    little: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    answer = await little.post("/form", content=b"a=1", headers=headers)
    assert answer.status_code == FormNotAccepted.status == 415
    assert answer.json()["refused"] == "form_not_accepted"


async def test_a_bodiless_request_may_be_an_empty_form(little: httpx.AsyncClient) -> None:
    assert (await little.post("/bodiless")).json() == {}
    assert (await little.post("/bodiless", data={"a": "1"})).json() == {"a": "1"}
    refused = await little.post("/bodiless", content=b"a=1", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415


# --- a surface's route class --------------------------------------------------------------------


async def test_a_surface_answers_its_errors_wherever_they_are_raised(
    little: httpx.AsyncClient,
) -> None:
    answer = await little.get("/refused-in-a-dependency")
    assert answer.status_code == 418 and answer.json() == {"refused": "Refused"}
    assert (await little.get("/not-found")).status_code == 404  # FastAPI's own, passed on
    elsewhere = await little.get("/elsewhere")
    assert elsewhere.status_code == 500 and elsewhere.json() == {"refused": "by the app"}


# --- the transaction a route takes ------------------------------------------------------------


async def test_write_commits_when_the_route_returns_and_rolls_back_when_it_raises(
    db: Database,
) -> None:
    transport = httpx.ASGITransport(app=little_app(db), raise_app_exceptions=False)
    kept, dropped = secrets.token_hex(8), secrets.token_hex(8)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post(f"/write/{kept}")).json() == {"claimed": True}
        assert (await client.post(f"/write/{dropped}", params={"fail": True})).status_code == 418
    async with db.transaction() as session:
        assert not await claim_nonce(session, kept, 600)  # committed: taken already
        assert await claim_nonce(session, dropped, 600)  # rolled back: still free


# --- one JSON error shape --------------------------------------------------------------------


def _shape(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["error"] == code and isinstance(body["message"], str), body
    assert "detail" not in body
    return body


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=settings.base_url) as client:
        yield client
    await app.state.db.dispose()


async def test_identitys_json_errors_are_error_and_message(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    program = {"Accept": "application/json"}
    _shape(await client.get("/no/such/page", headers=program), 404, "not_found")
    _shape(await client.get("/sso/session"), 401, "unauthenticated")
    _shape(await client.get("/metrics"), 401, "unauthenticated")
    _shape(await client.delete("/sso/session"), 405, "method_not_allowed")
    async with app_client(settings.model_copy(update={"metrics_token": None})) as bare:
        _shape(await bare.get("/metrics", headers=program), 404, "not_found")
    down = "postgresql+psycopg://postgres@127.0.0.1:1/x"
    async with app_client(settings.model_copy(update={"database_url": down})) as failing:
        failing.cookies.set("__Host-identity_session", "some-session")
        down_json = await failing.get("/sso/session")
        page = await failing.get("/sso/me")  # a page of /sso: its own refusal page
    failed = _shape(down_json, 503, "database_unavailable")  # an outage: retry, not a bug
    assert failed["message"] == "the database is unavailable; retry"
    assert down_json.headers["retry-after"] == page.headers["retry-after"] == "5"
    assert page.status_code == 503 and refusal_reason(page) == "database_unavailable"


async def test_the_dependencies_read_what_the_app_holds(settings: Settings) -> None:
    app = create_app(settings)
    request = Request({"type": "http", "app": app, "headers": []})
    assert web.settings(request) is settings
    assert web.database(request) is app.state.db
    assert web.provider(request) is app.state.provider
    await app.state.db.dispose()
