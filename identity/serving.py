"""`identity serve`: uvicorn (httptools) with bounds on what one client can make it hold.

uvicorn's httptools protocol accepts a request head of any size (httptools concatenates an
unfinished header line in memory) and waits forever for the rest of a head or a body. Whatever
proxy is or is not in front, the server itself bounds them here: a head larger than
`IDENTITY_REQUEST_HEAD_MAX_BYTES` is answered 431 before more of it is parsed; a head not complete
`IDENTITY_REQUEST_HEAD_TIMEOUT_SECONDS` after its first byte (or after connecting, for a new
connection) and a body not complete `IDENTITY_REQUEST_BODY_TIMEOUT_SECONDS` after its head end
the connection (408 when nothing has been answered yet). Idle keep-alive connections keep
uvicorn's own timeout (5 s).

`IDENTITY_METRICS_PORT` adds a second listening socket to the same server; requests arriving on
it see only `/metrics`.
"""

from __future__ import annotations

import asyncio
import http
import socket
from asyncio import TimerHandle
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, cast

import uvicorn
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from identity import health
from identity.settings import Settings


@dataclass(frozen=True)
class Limits:
    head_bytes: int = 64 * 1024
    head_seconds: float = 10.0
    body_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            head_bytes=settings.request_head_max_bytes,
            head_seconds=settings.request_head_timeout_seconds,
            body_seconds=settings.request_body_timeout_seconds,
        )


SPELLED = ((b"\r\nbody-sign: ", b"\r\nBody-Sign: "),)
"""Header names written with their capitals: uvicorn writes every name in lower case, but the
marketplace's V1 reads `Body-Sign` case-sensitively (`identity.marketplace.v1`)."""


class _SpelledHeaders:
    """The connection's transport, with the response head's `SPELLED` names given back their
    capitals. uvicorn writes a response's status line and headers in one write of their own,
    which begins with `HTTP/`; nothing else is touched."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._write = transport.write
        # what uvicorn asks of every request's transport, without `__getattr__`'s detour
        self.is_closing = transport.is_closing
        self.close = transport.close
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def write(self, data: bytes) -> None:
        if data.startswith(b"HTTP/") and any(lower in data for lower, _ in SPELLED):
            head_end = data.find(b"\r\n\r\n")
            head, rest = (data, b"") if head_end < 0 else (data[:head_end], data[head_end:])
            for lower, spelled in SPELLED:
                head = head.replace(lower, spelled)
            data = head + rest
        self._write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head metered before it reaches the parser and a
    deadline on receiving each head and each body. One timer per phase, armed when a read ends
    with that phase unfinished (a head or body that arrives whole needs none), none while idle
    between requests or while the app works.

    The head is metered exactly when its bytes arrive while a head is expected; a pipelined head
    that starts inside the same read as the previous request's body is metered from the next
    read on, so a head can reach the limit plus one read (asyncio reads at most 256 KiB)."""

    limits: ClassVar[Limits] = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the next bytes belong to a request's line and headers
        self._head_left = self.limits.head_bytes
        self._head_started = False
        self._deadline: TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(cast("asyncio.Transport", _SpelledHeaders(transport)))
        self._arm(self.limits.head_seconds, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # finishing the response under way, then closing; the rest is dropped
        while self._in_head and data:
            self._head_started = True
            chunk, data = data[: self._head_left], data[self._head_left :]
            self._head_left -= len(chunk)
            super().data_received(chunk)
            if self.transport.is_closing() or self._refused:
                return
            if self._in_head and self._head_left <= 0:
                self._refuse(431)
                return
        if data:
            super().data_received(data)
        if self._deadline is None and not self._refused:
            # A deadline only for what this read left unfinished (the usual request arrives
            # whole in one read, and needs none): the rest of a head, or of a body.
            if not self._in_head:
                self._arm(self.limits.body_seconds, self._body_timed_out)
            elif self._head_started:
                self._arm(self.limits.head_seconds, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head, self._head_left, self._head_started = True, self.limits.head_bytes, False
        super().on_message_complete()

    def _arm(self, seconds: float, handler: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        self._refuse(408 if self._head_started else None)

    def _body_timed_out(self) -> None:
        self._deadline = None
        self._refuse(408)

    def _refuse(self, status: int | None) -> None:
        """Stop reading this connection and close it, answering `status` when the request in
        question has had no answer yet. A previous request still being answered (pipelining)
        gets its response first."""
        self._refused = True
        self._disarm()
        cycle = self.cycle
        if self._in_head:
            if cycle is not None and not cycle.response_complete:
                cycle.keep_alive = False
                return
            if status is not None:
                self._write_status(status)
        elif cycle is not None and not cycle.response_started:
            cycle.disconnected = True  # the app's reads end, its writes are dropped
            cycle.message_event.set()
            if status is not None:
                self._write_status(status)
        if not self.transport.is_closing():
            self.transport.close()

    def _write_status(self, status: int) -> None:
        body = http.HTTPStatus(status).phrase.encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)


def protocol_with(limits: Limits) -> type[BoundedHttpToolsProtocol]:
    """uvicorn builds one protocol per connection from a class; this one carries the limits."""
    return type("IdentityHttpProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})


def with_metrics_port(app: ASGIApp, scrape: Callable[[], Awaitable[bytes]], port: int) -> ASGIApp:
    """Requests that arrived on the metrics port (the socket's own port, which no client header
    can change) see `/metrics` (what `scrape` gives) and nothing else; all others go to the
    app."""
    not_found = PlainTextResponse("not found", 404)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") or (None, None)
        if scope["type"] == "http" and server[1] == port:
            target: Response = not_found
            if scope["path"] == "/metrics":
                target = Response(await scrape(), media_type=CONTENT_TYPE_LATEST)
            await target(scope, receive, send)
            return
        await app(scope, receive, send)

    return dispatch


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def listen(settings: Settings, host: str, port: int) -> list[socket.socket]:
    """The service's socket, then the metrics port's if one is set. Bound before serving, so a
    port in use is reported before anything starts."""
    if settings.metrics_port == port:
        raise ValueError("IDENTITY_METRICS_PORT must differ from the port the service uses")
    ports = [port] if settings.metrics_port is None else [port, settings.metrics_port]
    sockets: list[socket.socket] = []
    try:
        for each in ports:
            sockets.append(listening_socket(host, each))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def run(app: FastAPI, settings: Settings, sockets: list[socket.socket]) -> None:
    """Serve `app` (built by `create_app(settings)`) on `listen(...)`'s sockets until SIGINT or
    SIGTERM; then requests under way finish, for `IDENTITY_SHUTDOWN_GRACE_SECONDS` at most."""
    asgi: ASGIApp = app
    if settings.metrics_port is not None:
        state = app.state
        scrape = partial(health.exposition, state.db, state.settings, state.metrics)
        asgi = with_metrics_port(app, scrape, settings.metrics_port)
    config = uvicorn.Config(
        asgi,
        http=protocol_with(Limits.from_settings(settings)),
        ws="none",
        log_level="warning",
        log_config=None,  # uvicorn's own lines go through the app's JSON logging
        access_log=False,
        server_header=False,  # no "server: uvicorn": nothing to tell a scanner
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    uvicorn.Server(config).run(sockets=sockets)
