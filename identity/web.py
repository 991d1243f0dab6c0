"""The request layer every surface shares: the typed dependencies a route takes, the one form
reader, the one JSON error shape, and how each surface answers its own errors.

**What a route takes.** `create_app` puts the app's parts on `app.state`; the functions here
are the only code that reads them back, each typed (`database`, `settings`, `provider`, …). A
route takes them as FastAPI dependencies (`Db`, `Read`, `Write`, `AppSettings`, or
`AppSessions`, `Annotated[Provider, depends(provider)]`); code that already holds the request
calls them.

**Who owns transactions.** Services take a session and never commit. A route whose whole work
is one unit takes `Write`: the transaction commits when the route returns and rolls back when
it raises, both before the answer is sent. A route that only reads takes `Read`. Declare either
after the dependencies that sign the caller in (FastAPI solves them in order): on SQLite a
transaction opened while another is open in the same request would wait for itself. The
exceptions take the `Database` (`Db`) and open their own short transactions, mostly because
none may stay open across a call out or a slow hash (on SQLite it would hold the one write
lock for a network round trip): the login and its session renewal (`sso`: the auth centre's
token and userinfo calls), password checks and changes (Argon2 hashing) and password resets
(a message sent between two writes). Two more must commit although they answer with an error:
the provider's endpoints (a reused code or refresh token stays revoked; their hot paths use
Core connections in autocommit) and the marketplace route (a failed signed call is audited,
and its nonce spent, in a transaction of its own). Each says in its docstring what it writes
and when.

**Forms.** `read_form` reads every posted form: URL-encoded only (a multipart parser would
spool file parts of any size to disk), at most `max_bytes` (the declared length is checked
before anything is read) and `max_fields` fields, each field once (which of two values would a
reader take? RFC 6749 §3.1 refuses them for the same reason), no control character in a name
or a value (except in the `free` fields, which only ever reach a hash). A problem is a
`FormRefused`, which each surface answers in its own way (an OAuth error, the refusal page, the
console's page).

**Control characters.** A control character (C0 or DEL) is refused wherever a request's text
is read: none has a meaning in a parameter, and PostgreSQL refuses a NUL in text outright, so
letting one through turns bad input into a 500.

**Errors.** A database that cannot be reached (`database_outage`) is a 503 with `Retry-After`
on every surface (`database_unavailable`), any other unexpected failure a 500. JSON errors of
ours have one shape, `{"error": code, "message": text}` (`problem`);
the OAuth endpoints answer RFC 6749's `{"error", "error_description"}` and the marketplace
KooGallery's `{resultCode, resultMsg}`, as those standards say. Each surface answers its errors
in one place: the errors only it raises by their type (`create_app` registers one handler per
type), and the errors shared by several surfaces (the admin wing's, raised by the same sign-in
check for the API, the console and `/login`) by the surface's route class (`Surface`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar, cast
from urllib.parse import parse_qsl

import structlog
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy import exc as db_errors
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from identity.db import Database
from identity.errors import IdentityError
from identity.observability import Metrics
from identity.settings import Settings

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from identity.admin.throttle import Throttle
    from identity.crypto import Mac
    from identity.marketplace.service import Marketplace
    from identity.notify import Notifier
    from identity.provider.service import Provider
    from identity.sessions import Sessions
    from identity.sso.service import Sso

log = structlog.get_logger("identity")

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
URLENCODED = "application/x-www-form-urlencoded"
FORM_BYTES = 16 * 1024
FORM_FIELDS = 16


def holds_control(*values: str | None) -> bool:
    """Whether any of `values` holds a control character (None and empty hold none)."""
    return any(value and CONTROL.search(value) for value in values)


# --- what a route takes ---------------------------------------------------------------------


def _held(request: Request, name: str) -> Any:
    """What `create_app` put on the app under `name`."""
    return getattr(request.app.state, name)


def database(request: Request) -> Database:
    return cast("Database", _held(request, "db"))


def settings(request: Request) -> Settings:
    return cast("Settings", _held(request, "settings"))


def metrics(request: Request) -> Metrics:
    return cast("Metrics", _held(request, "metrics"))


def time_zone(request: Request) -> ZoneInfo:
    return cast("ZoneInfo", _held(request, "time_zone"))


def provider(request: Request) -> Provider:
    return cast("Provider", _held(request, "provider"))


def sessions(request: Request) -> Sessions:
    return cast("Sessions", _held(request, "sessions"))


def sso(request: Request) -> Sso:
    return cast("Sso", _held(request, "sso"))


def marketplace(request: Request) -> Marketplace:
    return cast("Marketplace", _held(request, "marketplace"))


def notifier(request: Request) -> Notifier:
    return cast("Notifier", _held(request, "notifier"))


def reset_mac(request: Request) -> Mac:
    return cast("Mac", _held(request, "reset_mac"))


def local_login_mac(request: Request) -> Mac:
    return cast("Mac", _held(request, "local_login_mac"))


def password_throttle(request: Request) -> Throttle:
    return cast("Throttle", _held(request, "password_throttle"))


async def reading(request: Request) -> AsyncIterator[AsyncSession]:
    """A read-only unit of work for the route (`Database.read`)."""
    async with database(request).read() as session:
        yield session


async def writing(request: Request) -> AsyncIterator[AsyncSession]:
    """The route's one unit of work: committed when it returns, rolled back when it raises."""
    async with database(request).transaction() as session:
        yield session


T = TypeVar("T")


def depends(read: Callable[[Request], T]) -> Any:
    """`read` as a FastAPI dependency. FastAPI runs a plain function in a worker thread, a hop
    there and back on every request for what is one attribute lookup; a coroutine function it
    calls in place. Every dependency of the app is one (tests/test_routes_inline.py)."""

    async def held(request: Request) -> T:
        return read(request)

    return Depends(held)


Db = Annotated[Database, depends(database)]
Read = Annotated[AsyncSession, Depends(reading, scope="function")]
Write = Annotated[AsyncSession, Depends(writing, scope="function")]
AppSettings = Annotated[Settings, depends(settings)]
AppMetrics = Annotated[Metrics, depends(metrics)]
AppSessions = Annotated["Sessions", depends(sessions)]


# --- forms ----------------------------------------------------------------------------------


class FormRefused(IdentityError):
    """A posted form that cannot be read as one; the message says why, quoting nothing sent."""

    code = "bad_request"
    status = 400


class FormNotAccepted(FormRefused):
    """A body that is not a URL-encoded form, refused before it is read."""

    code = "form_not_accepted"
    status = 415


async def read_form(
    request: Request,
    *,
    max_bytes: int = FORM_BYTES,
    max_fields: int = FORM_FIELDS,
    free: frozenset[str] = frozenset(),
    bodiless: bool = False,
) -> dict[str, str]:
    """The posted form's fields. `bodiless`: a request with no body type (a front end sending
    only a header) is an empty form rather than a refusal."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if bodiless and not media:
        return {}
    if media != URLENCODED:
        raise FormNotAccepted(f"send an {URLENCODED} body")
    body = await _body(request, max_bytes)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise FormRefused("the form is not UTF-8 text") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields)
    except ValueError:
        raise FormRefused(f"the form has more than {max_fields} fields") from None
    return _fields(pairs, free)


async def _body(request: Request, max_bytes: int) -> bytes:
    too_large = FormRefused(f"the form is larger than {max_bytes} bytes")
    declared = request.headers.get("content-length", "").lstrip("0")
    digits = declared.isascii() and declared.isdigit()  # int() reads no "²", no 4,301 digits
    if digits and (len(declared) > 15 or int(declared) > max_bytes):
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def _fields(pairs: list[tuple[str, str]], free: frozenset[str]) -> dict[str, str]:
    form: dict[str, str] = {}
    for name, value in pairs:
        if holds_control(name) or (name not in free and holds_control(value)):
            raise FormRefused("a field of the form holds a control character")
    for name, value in pairs:
        if name in form:
            raise FormRefused(f"field {name[:32]} is repeated")
        form[name] = value
    return form


# --- errors ---------------------------------------------------------------------------------


def problem(
    code: str,
    message: str,
    status: int,
    headers: Mapping[str, str] | None = None,
    **more: object,
) -> JSONResponse:
    """A JSON error of ours: `{"error": code, "message": text}`, and `more` beside them."""
    return JSONResponse({"error": code, "message": message, **more}, status, headers=headers)


def invalid(exc: RequestValidationError) -> str:
    """A malformed parameter FastAPI found, as one message naming it (`limit: …`)."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
    return f"{where}: {first.get('msg', 'invalid')}"


def failed(request: Request, exc: Exception) -> None:
    """An unexpected failure (a database outage, a bug), logged once: its type, never its text."""
    log.error("request_failed", path=request.url.path, error=type(exc).__name__)


DATABASE_RETRY_SECONDS = 5
"""The `Retry-After` of an answer refused because the database cannot be reached."""


def database_outage(exc: Exception) -> bool:
    """Whether `exc` says the database cannot be reached or used just now (down, restarting,
    a dropped connection, no pooled connection free in time), rather than a bug: the request
    may succeed if sent again, so it is answered 503, not 500."""
    if isinstance(exc, db_errors.DBAPIError) and exc.connection_invalidated:
        return True
    outages = (db_errors.OperationalError, db_errors.InterfaceError, db_errors.TimeoutError)
    return isinstance(exc, (*outages, ConnectionError))


SURFACE = "identity.surface"
"""Where a `Surface` route marks the request's scope with itself."""


class Surface(APIRoute):
    """A route of one surface. It marks the request with its surface, and the app's handler of
    an error the surface `answers` (and does not let `pass`) gives it to `answer`, whoever
    raised it: a dependency shared with other surfaces included. The app's handlers run after
    the route's dependencies have ended (a `Write` transaction rolled back). A surface sets
    these in a subclass and gives it to its router (`APIRouter(route_class=…)`)."""

    answers: ClassVar[tuple[type[Exception], ...]] = ()
    passes: ClassVar[tuple[type[Exception], ...]] = (HTTPException, RequestValidationError)
    """What FastAPI answers itself, even when `answers` names a base class of it."""

    def answer(self, request: Request, error: Exception) -> Response:
        raise error

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            request.scope[SURFACE] = self
            return await handle(request)

        return route


Handler = Callable[[Request, Any], Awaitable[Response]]


def by_surface(otherwise: Callable[[Request, Any], Response]) -> Handler:
    """An app-level handler: the request's surface answers the error when it answers its type,
    else `otherwise` does."""

    async def handle(request: Request, error: Exception) -> Response:
        surface = request.scope.get(SURFACE)
        if (
            isinstance(surface, Surface)
            and isinstance(error, surface.answers)
            and not isinstance(error, surface.passes)
        ):
            return surface.answer(request, error)
        return otherwise(request, error)

    return handle
