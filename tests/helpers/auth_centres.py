"""Small real HTTP servers standing in for tenants' auth centres that misbehave.

Each runs in a thread of the test process on a free port of 127.0.0.1 (its own origin, so its
own budget and breaker in identity), answers the OneAccess token (POST) and userinfo (GET)
paths, and counts what it was asked and what it sent. acme is provisioned (signed calls to
identity over ASGI) with one of them as its auth centre; OK and INFO are the usual answers.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2 as httpx

from identity.app import create_app
from identity.settings import Settings
from identity.simulator import sender as events
from identity.simulator.sender import Keys, KooGallery
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY
from tests.helpers.simulator_world import APP_ID, world

Answer = tuple[int, str]

TENANT = "t-acme-0001"
CALLBACK = f"/sso/callback/{APP_ID}"
TOKEN = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 7200, "refresh_token": "r"}
OK = (200, json.dumps(TOKEN))
INFO = (200, json.dumps({"userName": "alice", "tenant": TENANT, "id": "x"}))


@dataclass
class Script:
    """What the server answers; a test may change it while the server runs."""

    token: Answer
    userinfo: Answer
    requests: int = 0
    sent_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, sent: int = 0) -> None:
        with self.lock:
            self.sent_bytes += sent


Respond = Callable[[BaseHTTPRequestHandler, Script], None]


def answer(handler: BaseHTTPRequestHandler, status: int, body: str) -> None:
    data = body.encode()
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def canned(handler: BaseHTTPRequestHandler, script: Script) -> None:
    answer(handler, *(script.token if handler.command == "POST" else script.userinfo))


@dataclass
class Server:
    url: str
    script: Script


@contextmanager
def auth_centre(
    token: Answer = (200, "{}"), userinfo: Answer = (200, "{}"), respond: Respond = canned
) -> Iterator[Server]:
    script = Script(token, userinfo)

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with script.lock:
                script.requests += 1
            # identity hanging up is what the slow and huge answers are for
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                respond(self, script)

        do_POST = do_GET = _handle  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{server.server_port}", script)
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def canned_auth_centre(token: Answer, userinfo: Answer) -> Iterator[str]:
    """Answers the token and userinfo paths with the given (status, body)."""
    with auth_centre(token, userinfo) as server:
        yield server.url


def drip(every: float, total: int) -> Respond:
    """A 200 whose body arrives one byte every `every` seconds, `total` bytes in all: each read
    gets data long before any per-read timeout, so only a deadline for the whole call ends it."""

    def respond(handler: BaseHTTPRequestHandler, script: Script) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(total):
            time.sleep(every)
            handler.wfile.write(b" ")
            handler.wfile.flush()
            script.count(1)

    return respond


def huge(size: int, chunk: int = 64 * 1024) -> Respond:
    """A 200 of `size` bytes without a Content-Length (the body runs until the connection
    closes), so the only way to know its size is to read it."""

    def respond(handler: BaseHTTPRequestHandler, script: Script) -> None:
        handler.send_response(200)
        handler.end_headers()
        block = b"x" * chunk
        for _ in range(size // chunk):
            handler.wfile.write(block)
            script.count(chunk)
        handler.close_connection = True

    return respond


@dataclass
class Silent:
    """An auth centre that never answers: its URL, and how many connections it holds."""

    url: str
    held: list[socket.socket] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return len(self.held)


@contextmanager
def silent_auth_centre() -> Iterator[Silent]:
    """Accepts connections (in a thread of its own, counting them) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        listener.settimeout(0.05)
        silent = Silent(f"http://127.0.0.1:{listener.getsockname()[1]}")
        stop = threading.Event()

        def hold() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    silent.held.append(listener.accept()[0])

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        try:
            yield silent
        finally:
            stop.set()
            holder.join()
            for connection in silent.held:
                connection.close()


async def provision(identity: httpx.AsyncClient, private_key_file: Path, domain: str) -> None:
    """acme provisioned through signed calls to `identity`, `domain` its auth centre."""
    keys = Keys.from_private_key_pem(BASIC_KEY, KIT_KEY, private_key_file.read_bytes())
    sender = KooGallery(identity, keys, app_id=APP_ID, auth_centre=domain)
    await events.provision(sender, world().tenant("acme"))


@asynccontextmanager
async def identity_with(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """identity in-process over ASGI, with these settings changed."""
    app = create_app(settings.model_copy(update=changes))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=settings.base_url) as client:
            yield client
    finally:
        await app.state.sso.auth_centre.close()
        if app.state.marketplace.order_api is not None:
            await app.state.marketplace.order_api.close()
        await app.state.db.dispose()
