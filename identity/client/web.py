"""FastAPI glue: a dependency that yields the member's claims, and a back-channel logout route.

FastAPI is imported inside the factories, so `import identity.client` works in an app that
does not use FastAPI. (No `from __future__ import annotations` here: FastAPI reads the
endpoint's annotations at runtime, and `Request` is a local name.)
"""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from identity.client.errors import ProviderUnavailable, TokenRejected
from identity.client.events import EventHandler, EventReceiver
from identity.client.logout import JtiCache, LogoutHandler, receive_logout_token, replay_cache_for
from identity.client.tokens import Claims, TokenValidator

if TYPE_CHECKING:
    from fastapi import APIRouter, Request

MAX_LOGOUT_BODY = 16 * 1024  # a logout token is well under 2 KiB
MAX_EVENTS_BODY = 8 * 1024 * 1024  # a batch of 100 events with their resources: well under 1 MiB
NO_STORE = {"Cache-Control": "no-store"}  # Back-Channel Logout 1.0 §2.8
RETRY_AFTER_SECONDS = "5"


def bearer_claims(validator: TokenValidator) -> Callable[..., Awaitable[Claims]]:
    """A dependency answering the claims of the request's `Authorization: Bearer` access token.

    No token: 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3.1 wants no error code when no
    credentials were sent). A refused token: 401 with `Bearer error="invalid_token"`. Keys
    that cannot be fetched: 503 with Retry-After, so a restarting identity does not look to the
    member's browser like a signed-out member.
    """
    from fastapi import HTTPException, Request

    async def member_claims(request: Request) -> Claims:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                401, "a bearer access token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            return await validator.validate_access_token(token)
        except TokenRejected as rejected:
            challenge = f'Bearer error="invalid_token", error_description="{rejected.reason}"'
            raise HTTPException(
                401, f"invalid_token: {rejected.reason}", headers={"WWW-Authenticate": challenge}
            ) from None
        except ProviderUnavailable:
            raise HTTPException(
                503,
                "the identity provider's keys are unavailable",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            ) from None

    return member_claims


def backchannel_logout_router(
    validator: TokenValidator,
    handler: LogoutHandler,
    *,
    path: str = "/backchannel-logout",
    seen: JtiCache | None = None,
) -> "APIRouter":
    """A router with `POST {path}`: the app's back-channel logout URI.

    200 (empty, no-store) once `handler(sid, sub)` returned; 400 `{"error": "invalid_request",
    "error_description"}` for a refused token or request (§2.8); 503 with Retry-After when the
    keys could not be fetched or the replay cache is full, so identity's worker retries. An
    exception from the handler is a 500, and identity retries that too.
    """
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse, Response

    cache = seen if seen is not None else replay_cache_for(validator)

    async def backchannel_logout(request: Request) -> Response:
        try:
            token = await _logout_token(request)
            await receive_logout_token(validator, cache, handler, token)
        except TokenRejected as rejected:
            body = {"error": "invalid_request", "error_description": str(rejected)}
            return JSONResponse(body, status_code=400, headers=NO_STORE)
        except ProviderUnavailable as unavailable:
            body = {"error": "temporarily_unavailable", "error_description": str(unavailable)}
            headers = {**NO_STORE, "Retry-After": RETRY_AFTER_SECONDS}
            return JSONResponse(body, status_code=503, headers=headers)
        return Response(status_code=200, headers=NO_STORE)

    router = APIRouter()
    router.add_api_route(path, backchannel_logout, methods=["POST"], include_in_schema=False)
    return router


def events_router(
    receiver: EventReceiver, handler: EventHandler, *, path: str = "/identity-events"
) -> "APIRouter":
    """A router with `POST {path}`: the app's events URI (`identity clients add --events-uri`).

    204 once `handler(events)` returned for the batch's new events (or none were new); 400
    `{"error", "error_description"}` for a body that is not signed by the events secret, too
    old, or not a batch, and identity sends it again later; an exception from the handler is a
    500, and identity sends the batch again, whole."""
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse, Response

    async def receive_events(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_EVENTS_BODY:
                error = {"error": "too_large", "error_description": "the batch is too large"}
                return JSONResponse(error, status_code=413, headers=NO_STORE)
        try:
            await receiver.receive(bytes(body), request.headers, handler)
        except TokenRejected as rejected:
            error = {"error": rejected.reason, "error_description": rejected.detail}
            return JSONResponse(error, status_code=400, headers=NO_STORE)
        return Response(status_code=204, headers=NO_STORE)

    router = APIRouter()
    router.add_api_route(path, receive_events, methods=["POST"], include_in_schema=False)
    return router


async def _logout_token(request: "Request") -> str:
    """The one `logout_token` of a small url-encoded form (§2.5), read with a size cap."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise TokenRejected("malformed", "the body must be an url-encoded form")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGOUT_BODY:
            raise TokenRejected("malformed", f"the body is over {MAX_LOGOUT_BODY} bytes")
    try:
        fields = parse_qs(body.decode("ascii"), strict_parsing=True, max_num_fields=8)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        raise TokenRejected("malformed", "the body is not an url-encoded form") from None
    tokens = fields.get("logout_token", [])
    if len(tokens) != 1:
        raise TokenRejected("malformed", "the form must carry exactly one logout_token")
    return tokens[0]
